using YamlDotNet.RepresentationModel;

namespace Crid.Core.Configuration;

/// <summary>
/// One entry of the <c>registries</c> list, the shape operators know from cri-o's registries.conf
/// ([[registry]] prefix/location/insecure/mirror) and containerd's hosts.toml: images whose name
/// starts with <see cref="Prefix"/> are fetched from the <see cref="Mirrors"/> first, in order, then
/// from <see cref="Location"/>. With a location, the prefix's own host is never contacted.
/// </summary>
public sealed record RegistryEntry
{
    /// <summary>A host (<c>registry.k8s.io</c>, <c>localhost:5000</c>) or a host and path (<c>quay.io/team</c>).</summary>
    public required string Prefix { get; init; }

    /// <summary>What replaces the prefix; null keeps the prefix itself.</summary>
    public string? Location { get; init; }

    /// <summary>Plain HTTP (no TLS) for <see cref="Location"/> (and for mirrors that do not say).</summary>
    public bool Insecure { get; init; }

    public IReadOnlyList<RegistryMirror> Mirrors { get; init; } = [];
}

/// <summary>A mirror of a <see cref="RegistryEntry"/>: tried before its location.</summary>
public sealed record RegistryMirror(string Location, bool Insecure);

/// <summary>Reads the structured <c>registries</c> key from the YAML file, with the loader's line-numbered errors.</summary>
internal static class RegistryConfig
{
    public static IReadOnlyList<RegistryEntry> Parse(YamlNode node, Func<YamlNode, string, ConfigException> fail)
    {
        if (node is YamlScalarNode { Value: null or "" })
            return [];
        if (node is not YamlSequenceNode list)
            throw fail(node, "expected a list of {prefix, location, insecure, mirrors} entries");
        var entries = new List<RegistryEntry>();
        foreach (var item in list.Children)
        {
            if (item is not YamlMappingNode map)
                throw fail(item, "each entry must be a mapping with a \"prefix\"");
            string? prefix = null, location = null;
            var insecure = false;
            var mirrors = new List<(YamlNode Node, string Location, bool? Insecure)>();
            var seen = new HashSet<string>();
            foreach (var (k, v) in map.Children)
            {
                var name = (k as YamlScalarNode)?.Value ?? "";
                if (!seen.Add(name))
                    throw fail(k, $"\"{name}\" given twice");
                switch (name)
                {
                    case "prefix":
                        prefix = Host(v, Scalar(v, name, fail), name, fail);
                        break;
                    case "location":
                        location = Host(v, Scalar(v, name, fail), name, fail);
                        break;
                    case "insecure":
                        insecure = Bool(v, name, fail);
                        break;
                    case "mirrors":
                        if (v is not YamlSequenceNode ms)
                            throw fail(v, "\"mirrors\": expected a list of locations");
                        foreach (var m in ms.Children)
                        {
                            if (m is YamlScalarNode)
                            {
                                mirrors.Add((m, Host(m, Scalar(m, "mirrors", fail), "mirrors", fail), null));
                                continue;
                            }
                            if (m is not YamlMappingNode mm)
                                throw fail(m, "\"mirrors\": each mirror is a location or {location, insecure}");
                            string? ml = null;
                            bool? mi = null;
                            foreach (var (mk, mv) in mm.Children)
                            {
                                var mname = (mk as YamlScalarNode)?.Value ?? "";
                                if (mname == "location")
                                    ml = Host(mv, Scalar(mv, "mirrors.location", fail), "mirrors.location", fail);
                                else if (mname == "insecure")
                                    mi = Bool(mv, "mirrors.insecure", fail);
                                else
                                    throw fail(mk, $"\"mirrors\": unknown key \"{mname}\" (location, insecure)");
                            }
                            mirrors.Add((m, ml ?? throw fail(m, "\"mirrors\": a mirror needs a \"location\""), mi));
                        }
                        break;
                    default:
                        throw fail(k, $"unknown key \"{name}\" (prefix, location, insecure, mirrors)");
                }
            }
            if (prefix is null)
                throw fail(item, "\"prefix\" is required");
            if (entries.Any(e => e.Prefix == prefix))
                throw fail(item, $"prefix \"{prefix}\" is given twice");
            entries.Add(new RegistryEntry
            {
                Prefix = prefix,
                Location = location,
                Insecure = insecure,
                Mirrors = mirrors.Select(m => new RegistryMirror(m.Location, m.Insecure ?? insecure)).ToArray(),
            });
        }
        return entries.Count == 0 ? Array.Empty<RegistryEntry>() : entries;
    }

    private static string Scalar(YamlNode node, string key, Func<YamlNode, string, ConfigException> fail) =>
        node is YamlScalarNode { Value: { Length: > 0 } value } ? value.Trim()
            : throw fail(node, $"\"{key}\": expected a non-empty string");

    private static bool Bool(YamlNode node, string key, Func<YamlNode, string, ConfigException> fail) =>
        (node as YamlScalarNode)?.Value?.ToLowerInvariant() switch
        {
            "true" or "yes" => true,
            "false" or "no" => false,
            _ => throw fail(node, $"\"{key}\": expected true or false"),
        };

    /// <summary>A registry host, optionally with a port and a path: no scheme, no spaces, lower-case path.</summary>
    private static string Host(YamlNode node, string value, string key, Func<YamlNode, string, ConfigException> fail)
    {
        if (value.Contains("://", StringComparison.Ordinal))
            throw fail(node, $"\"{key}\": \"{value}\" must be a host[:port][/path] without a scheme (use insecure: true for plain HTTP)");
        var trimmed = value.TrimEnd('/');
        var slash = trimmed.IndexOf('/');
        var host = slash < 0 ? trimmed : trimmed[..slash];
        if (host.Length == 0 || !host.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or ':' or '[' or ']')
            || (slash >= 0 && !trimmed[(slash + 1)..].All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_' or '-' or '/')))
            throw fail(node, $"\"{key}\": \"{value}\" is not a registry host[:port][/path]");
        return trimmed;
    }
}
