using System.Globalization;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Runtime.V1;
using YamlDotNet.RepresentationModel;

namespace Crid.Core.Sandboxes;

/// <summary>
/// Reads a pod sandbox config the way `crictl runp` takes it: JSON or YAML, proto field names in
/// snake_case (or lowerCamelCase), enums by number or name.
/// </summary>
public static class SandboxConfigFile
{
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(false));

    public static PodSandboxConfig Load(string path)
    {
        var text = File.ReadAllText(path);
        var json = path.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".yml", StringComparison.OrdinalIgnoreCase)
            ? YamlToJson(text)
            : text;
        return Parser.Parse<PodSandboxConfig>(json);
    }

    /// <summary>YAML's data model is JSON's plus more; a config uses only the JSON part.</summary>
    public static string YamlToJson(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            if (stream.Documents.Count == 0)
                w.WriteStartObject();
            else
                Write(w, stream.Documents[0].RootNode);
            if (stream.Documents.Count == 0)
                w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void Write(Utf8JsonWriter w, YamlNode node)
    {
        switch (node)
        {
            case YamlMappingNode map:
                w.WriteStartObject();
                foreach (var (key, value) in map.Children)
                {
                    w.WritePropertyName(((YamlScalarNode)key).Value ?? "");
                    Write(w, value);
                }
                w.WriteEndObject();
                break;
            case YamlSequenceNode seq:
                w.WriteStartArray();
                foreach (var item in seq.Children)
                    Write(w, item);
                w.WriteEndArray();
                break;
            case YamlScalarNode scalar:
                var v = scalar.Value ?? "";
                if (scalar.Style != YamlDotNet.Core.ScalarStyle.Plain)
                    w.WriteStringValue(v);
                else if (v is "null" or "~" or "")
                    w.WriteNullValue();
                else if (v is "true" or "false")
                    w.WriteBooleanValue(v == "true");
                else if (long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n))
                    w.WriteNumberValue(n);
                else
                    w.WriteStringValue(v);
                break;
        }
    }
}
