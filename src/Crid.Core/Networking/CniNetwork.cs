using System.Text.Json;
using System.Text.Json.Nodes;

namespace Crid.Core.Networking;

/// <summary>
/// One CNI network configuration list, as the CNI spec ("Configuration format") defines it: a
/// <c>cniVersion</c>, a <c>name</c> and the <c>plugins</c> run in order on ADD and in reverse on DEL.
/// The text is kept as read, so a sandbox's record can hold the exact list its DEL must use.
/// </summary>
internal sealed class CniNetwork
{
    public required string Name { get; init; }
    public required string CniVersion { get; init; }

    /// <summary>The file it came from; empty when it was rebuilt from a sandbox record.</summary>
    public required string File { get; init; }

    /// <summary>The list as JSON text (a single-plugin <c>.conf</c> already wrapped).</summary>
    public required string Json { get; init; }

    public required IReadOnlyList<JsonObject> Plugins { get; init; }

    private static readonly JsonDocumentOptions ReadOptions = new() { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow };

    /// <summary>
    /// Parses a <c>.conflist</c>, or a <c>.conf</c>/<c>.json</c> holding either a list or one plugin's
    /// config (libcni's ConfListFromFile does the same wrapping, so the same folder works with both).
    /// </summary>
    /// <exception cref="FormatException">the reason the file is not a usable network config.</exception>
    public static CniNetwork Parse(string file, string text)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: ReadOptions);
        }
        catch (JsonException e)
        {
            throw new FormatException($"invalid JSON: {e.Message}");
        }
        if (node is not JsonObject root)
            throw new FormatException("the file must hold a JSON object");

        JsonObject list;
        if (root.ContainsKey("plugins"))
        {
            list = root;
        }
        else if (!file.EndsWith(".conflist", StringComparison.Ordinal) && root.ContainsKey("type"))
        {
            // A single plugin's config: its name and version become the list's.
            list = new JsonObject
            {
                ["cniVersion"] = root["cniVersion"]?.DeepClone(),
                ["name"] = root["name"]?.DeepClone(),
                ["plugins"] = new JsonArray(root.DeepClone()),
            };
        }
        else
        {
            throw new FormatException("no \"plugins\" list" + (file.EndsWith(".conflist", StringComparison.Ordinal) ? "" : " and no plugin \"type\""));
        }
        return FromList(list, file);
    }

    /// <summary>Rebuilds the list a sandbox record kept.</summary>
    public static CniNetwork FromJson(string json) => Parse("", json);

    private static CniNetwork FromList(JsonObject list, string file)
    {
        var name = StringField(list, "name");
        var version = StringField(list, "cniVersion");
        if (list["plugins"] is not JsonArray { Count: > 0 } plugins)
            throw new FormatException("\"plugins\" must be a non-empty list");
        var result = new List<JsonObject>();
        for (var i = 0; i < plugins.Count; i++)
        {
            if (plugins[i] is not JsonObject plugin)
                throw new FormatException($"plugins[{i}] is not an object");
            var type = plugin["type"] is JsonValue t && t.TryGetValue<string>(out var s) ? s : null;
            // The type names an executable found in CNI_PATH: a path or a dot-name would escape those folders.
            if (string.IsNullOrEmpty(type) || type.Contains('/') || type is "." or "..")
                throw new FormatException($"plugins[{i}].type must be a plugin's file name");
            result.Add(plugin);
        }
        return new CniNetwork
        {
            Name = name,
            CniVersion = version,
            File = file,
            Json = list.ToJsonString(),
            Plugins = result,
        };
    }

    private static string StringField(JsonObject o, string field) =>
        o[field] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0
            ? s
            : throw new FormatException($"\"{field}\" must be a non-empty string");

    /// <summary>Whether a plugin asked for a runtime capability (CNI CONVENTIONS.md, "Dynamic Plugin specific fields").</summary>
    public static bool HasCapability(JsonObject plugin, string capability) =>
        plugin["capabilities"] is JsonObject caps && caps[capability] is JsonValue v && v.TryGetValue<bool>(out var on) && on;

    public static string TypeOf(JsonObject plugin) => plugin["type"]!.GetValue<string>();
}
