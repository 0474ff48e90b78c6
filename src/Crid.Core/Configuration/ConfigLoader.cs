using System.Text;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Crid.Core.Configuration;

/// <summary>The outcome of reading the command line: either options to run with, or text to print.</summary>
public sealed record LoadResult(CridOptions Options, string? HelpText);

/// <summary>
/// Builds <see cref="CridOptions"/> from defaults, the YAML file and the flags, in that order of precedence
/// (flags win). Every problem becomes one <see cref="ConfigException"/> line naming the file, line and key.
/// </summary>
public static class ConfigLoader
{
    public static LoadResult Load(IReadOnlyList<string> args, string defaultConfigFile = CridOptions.DefaultConfigFile)
    {
        var flags = ParseFlags(args, out var help, out var configFlag);
        if (help)
            return new LoadResult(new CridOptions(), HelpText());

        var options = new CridOptions();
        var file = configFlag ?? (File.Exists(defaultConfigFile) ? defaultConfigFile : null);
        if (file is not null)
        {
            if (!Path.IsPathFullyQualified(file))
                throw new ConfigException($"--config: \"{file}\" is not an absolute path");
            string text;
            try { text = File.ReadAllText(file); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ConfigException($"{file}: cannot read: {e.Message}");
            }
            options = ApplyYaml(options, file, text) with { ConfigFile = file };
        }
        foreach (var (key, value) in flags)
            options = key.Apply(options, Convert(key, value, v => $"--{key.Name}: {v}"));
        return new LoadResult(options, null);
    }

    /// <summary>
    /// The effective configuration as JSON, keyed exactly as the YAML file and the flags are (what
    /// `crictl info` shows), plus "config" for the file that was read.
    /// </summary>
    public static string ToJson(CridOptions options)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(512);
        using (var w = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("config", options.ConfigFile);
            foreach (var key in OptionKeys.All)
            {
                switch (key.Kind)
                {
                    case OptionKind.StringList or OptionKind.PathList or OptionKind.HandlerList:
                        w.WriteStartArray(key.Name);
                        foreach (var item in key.Show(options).Split(',', StringSplitOptions.RemoveEmptyEntries))
                            w.WriteStringValue(item);
                        w.WriteEndArray();
                        break;
                    case OptionKind.Registries:
                        // JSON is YAML: the list reads back as the file's own shape.
                        w.WriteStartArray(key.Name);
                        foreach (var r in options.Registries)
                        {
                            w.WriteStartObject();
                            w.WriteString("prefix", r.Prefix);
                            if (r.Location is not null)
                                w.WriteString("location", r.Location);
                            w.WriteBoolean("insecure", r.Insecure);
                            w.WriteStartArray("mirrors");
                            foreach (var m in r.Mirrors)
                            {
                                w.WriteStartObject();
                                w.WriteString("location", m.Location);
                                w.WriteBoolean("insecure", m.Insecure);
                                w.WriteEndObject();
                            }
                            w.WriteEndArray();
                            w.WriteEndObject();
                        }
                        w.WriteEndArray();
                        break;
                    case OptionKind.PositiveNumber or OptionKind.Count:
                        w.WriteNumber(key.Name, double.Parse(key.Show(options), System.Globalization.CultureInfo.InvariantCulture));
                        break;
                    case OptionKind.Port:
                        w.WriteNumber(key.Name, int.Parse(key.Show(options), System.Globalization.CultureInfo.InvariantCulture));
                        break;
                    default:
                        w.WriteString(key.Name, key.Show(options));
                        break;
                }
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static string HelpText()
    {
        var defaults = new CridOptions();
        var text = new StringBuilder();
        text.AppendLine("crid: a Kubernetes CRI runtime.v1 daemon that pins pod namespaces.");
        text.AppendLine();
        text.AppendLine("Usage: crid [flags]");
        text.AppendLine();
        text.AppendLine("Flags (each also a key of the YAML config file; flags win over the file):");
        text.AppendLine($"  --config FILE{"",-14} YAML config file (default {CridOptions.DefaultConfigFile}, read when it exists)");
        foreach (var key in OptionKeys.All)
        {
            var shown = key.Show(defaults);
            text.AppendLine($"  --{key.Name + " " + Placeholder(key.Kind),-25} {key.Help} (default \"{shown}\")");
        }
        text.AppendLine($"  --version{"",-18} print the version and exit");
        text.AppendLine($"  --help{"",-21} print this text");
        return text.ToString();
    }

    private static string Placeholder(OptionKind kind) => kind switch
    {
        OptionKind.Path or OptionKind.OptionalPath => "PATH",
        OptionKind.LogLevel => "LEVEL",
        OptionKind.StringList => "A,B",
        OptionKind.PathList => "DIR,DIR",
        OptionKind.PositiveNumber => "SECONDS",
        OptionKind.HandlerList => "H[=PATH],...",
        OptionKind.Count => "N",
        OptionKind.Registries => "(file)",
        OptionKind.IpAddress => "ADDRESS",
        OptionKind.Port => "PORT",
        _ => "VALUE",
    };

    private static List<(OptionKey Key, string Value)> ParseFlags(IReadOnlyList<string> args, out bool help, out string? config)
    {
        var flags = new List<(OptionKey, string)>();
        help = false;
        config = null;
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "--help" or "-h")
            {
                help = true;
                continue;
            }
            if (!arg.StartsWith("--", StringComparison.Ordinal))
                throw new ConfigException($"unexpected argument \"{arg}\" (see --help)");
            var name = arg[2..];
            string? value = null;
            var eq = name.IndexOf('=');
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            var key = OptionKeys.Find(name);
            if (key is null && name != "config")
                throw new ConfigException($"unknown flag \"--{name}\" (see --help)");
            if (value is null)
            {
                if (i + 1 >= args.Count)
                    throw new ConfigException($"--{name}: a value is required");
                value = args[++i];
            }
            if (key is { Kind: OptionKind.Registries })
                throw new ConfigException($"--{name}: a structured list, given in the config file only (see README)");
            if (key is null)
                config = value;
            else
                flags.Add((key, value));
        }
        return flags;
    }

    private static CridOptions ApplyYaml(CridOptions options, string file, string text)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            // YamlDotNet refuses a repeated key itself; name the key as for every other key error.
            var lines = text.Split('\n');
            var at = e.Start.Line >= 1 && e.Start.Line <= lines.Length ? lines[(int)e.Start.Line - 1] : "";
            if (e.Message.Contains("Duplicate key", StringComparison.OrdinalIgnoreCase) && at.Contains(':'))
                throw new ConfigException($"{file}:{e.Start.Line}: key \"{at[..at.IndexOf(':')].Trim()}\": given twice");
            throw new ConfigException($"{file}:{e.Start.Line}: invalid YAML: {e.Message.ReplaceLineEndings(" ")}");
        }
        if (stream.Documents.Count == 0)
            return options;
        if (stream.Documents.Count > 1)
            throw new ConfigException($"{file}:{stream.Documents[1].RootNode.Start.Line}: only one YAML document is allowed");
        var root = stream.Documents[0].RootNode;
        if (root is YamlScalarNode { Value: null or "" })
            return options;
        if (root is not YamlMappingNode map)
            throw new ConfigException($"{file}:{root.Start.Line}: the file must be a mapping of keys to values");

        var seen = new HashSet<string>();
        foreach (var (keyNode, valueNode) in map.Children)
        {
            var line = keyNode.Start.Line;
            var name = (keyNode as YamlScalarNode)?.Value ?? "";
            var key = OptionKeys.Find(name)
                ?? throw new ConfigException($"{file}:{line}: key \"{name}\": unknown key");
            if (!seen.Add(name))
                throw new ConfigException($"{file}:{line}: key \"{name}\": given twice");
            object raw;
            if (key.Kind == OptionKind.Registries)
            {
                var entries = RegistryConfig.Parse(valueNode,
                    (node, problem) => new ConfigException($"{file}:{node.Start.Line}: key \"{name}\": {problem}"));
                options = key.Apply(options, entries);
                continue;
            }
            if (key.Kind is OptionKind.PathList or OptionKind.StringList or OptionKind.HandlerList && valueNode is YamlScalarNode one)
            {
                // A list may be written as one string, comma-separated, as on the command line.
                raw = one.Value ?? "";
            }
            else if (key.Kind is OptionKind.StringList or OptionKind.PathList or OptionKind.HandlerList)
            {
                if (valueNode is not YamlSequenceNode seq || seq.Children.Any(c => c is not YamlScalarNode))
                    throw new ConfigException($"{file}:{valueNode.Start.Line}: key \"{name}\": expected a list of strings");
                raw = seq.Children.Select(c => ((YamlScalarNode)c).Value ?? "").ToList();
            }
            else
            {
                if (valueNode is not YamlScalarNode scalar)
                    throw new ConfigException($"{file}:{valueNode.Start.Line}: key \"{name}\": expected a string, got a {(valueNode is YamlSequenceNode ? "list" : "mapping")}");
                raw = scalar.Value ?? "";
            }
            options = key.Apply(options, Convert(key, raw, v => $"{file}:{valueNode.Start.Line}: key \"{name}\": {v}"));
        }
        return options;
    }

    /// <summary>Checks a raw value against its key's kind; <paramref name="where"/> prefixes the error line.</summary>
    private static object Convert(OptionKey key, object raw, Func<string, string> where)
    {
        switch (key.Kind)
        {
            case OptionKind.OptionalPath when ((string)raw).Length == 0:
                // Empty: none (the default), as `crictl info` shows it.
                return "";
            case OptionKind.Path or OptionKind.OptionalPath:
                var path = (string)raw;
                if (path.Length == 0 || !Path.IsPathFullyQualified(path))
                    throw new ConfigException(where($"\"{path}\" is not an absolute path"));
                if (path.Contains('\0'))
                    throw new ConfigException(where("a path must not contain NUL"));
                return Path.TrimEndingDirectorySeparator(path) is { Length: > 0 } trimmed ? trimmed : path;
            case OptionKind.LogLevel:
                var level = ((string)raw).ToLowerInvariant();
                if (!OptionKeys.LogLevels.Contains(level))
                    throw new ConfigException(where($"\"{raw}\" is not a log level ({string.Join(", ", OptionKeys.LogLevels)})"));
                return level;
            case OptionKind.StringList:
                var list = raw as IReadOnlyList<string> ?? ((string)raw).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (list.Any(string.IsNullOrWhiteSpace))
                    throw new ConfigException(where("list entries must not be empty"));
                return list.ToArray();
            case OptionKind.HandlerList:
                var handlers = (string[])Convert(key with { Kind = OptionKind.StringList }, raw, where);
                foreach (var h in handlers)
                {
                    try
                    {
                        ConfiguredHandler.Parse(h, "/");
                    }
                    catch (FormatException e)
                    {
                        throw new ConfigException(where(e.Message));
                    }
                }
                if (handlers.Select(h => ConfiguredHandler.Parse(h, "/").Name).GroupBy(n => n).FirstOrDefault(g => g.Count() > 1) is { } twice)
                    throw new ConfigException(where($"runtime handler {twice.Key} is given twice"));
                return handlers;
            case OptionKind.Count:
                if (!long.TryParse(((string)raw).Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var count))
                    throw new ConfigException(where($"\"{raw}\" is not a whole number of 0 or more"));
                return count;
            case OptionKind.PathList:
                var paths = raw as IReadOnlyList<string> ?? ((string)raw).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (paths.Count == 0)
                    throw new ConfigException(where("at least one folder is required"));
                return paths.Select(p => (string)Convert(new OptionKey(key.Name, OptionKind.Path, key.Help, key.Show, key.Apply), p, where)).ToArray();
            case OptionKind.PositiveNumber:
                var text = ((string)raw).Trim();
                if (!double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var number)
                    || !double.IsFinite(number) || number <= 0)
                    throw new ConfigException(where($"\"{raw}\" is not a positive number"));
                // Timeouts become TimeSpans and Process waits in milliseconds that must fit an int.
                if (number > OptionKeys.MaxSeconds)
                    throw new ConfigException(where($"{raw} is more than {OptionKeys.MaxSeconds} seconds"));
                return number;
            case OptionKind.IpAddress:
                var address = ((string)raw).Trim();
                // IPAddress.TryParse also takes "1" (0.0.0.1): an address here is dotted quad or IPv6.
                if (!(address.Contains('.') || address.Contains(':')) || !System.Net.IPAddress.TryParse(address, out var ip))
                    throw new ConfigException(where($"\"{raw}\" is not an IP address"));
                return ip.ToString();
            case OptionKind.Port:
                if (!int.TryParse(((string)raw).Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) || port > 65535)
                    throw new ConfigException(where($"\"{raw}\" is not a port (0-65535)"));
                return port;
            default:
                return (string)raw;
        }
    }
}
