using System.Text.Json;

namespace Crid.Core.Networking;

/// <summary>
/// What a CNI ADD is about to run with, written down before it runs: enough for a DEL with the very
/// same arguments when the daemon dies before the sandbox's record holds the attachment (cri-o and
/// containerd keep the same facts for the same reason). The network list as it was at ADD, the
/// network namespace's pin (DEL is fine when it is gone: plugins accept a missing netns), the CNI_ARGS
/// and the portMappings capability argument.
/// </summary>
public sealed record NetworkIntent
{
    public required string NetworkName { get; init; }

    /// <summary>The network configuration list, as JSON text.</summary>
    public required string ConfigJson { get; init; }

    /// <summary>The pinned network namespace the plugins run in.</summary>
    public required string NetNs { get; init; }

    /// <summary>CNI_ARGS.</summary>
    public required string CniArgs { get; init; }

    /// <summary>The portMappings runtimeConfig (a JSON array), or empty when the pod maps no host port.</summary>
    public required string PortMappingsJson { get; init; }

    internal void WriteTo(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("networkName", NetworkName);
        w.WriteString("config", ConfigJson);
        w.WriteString("netns", NetNs);
        w.WriteString("cniArgs", CniArgs);
        w.WriteString("portMappings", PortMappingsJson);
        w.WriteEndObject();
    }

    /// <exception cref="FormatException">a field is missing or not a string.</exception>
    internal static NetworkIntent ReadFrom(JsonElement e) => new()
    {
        NetworkName = Field(e, "networkName"),
        ConfigJson = Field(e, "config"),
        NetNs = Field(e, "netns"),
        CniArgs = Field(e, "cniArgs"),
        PortMappingsJson = Field(e, "portMappings"),
    };

    private static string Field(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()!
            : throw new FormatException($"the network intent has no \"{name}\"");
}
