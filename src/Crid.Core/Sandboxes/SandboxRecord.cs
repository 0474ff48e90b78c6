using System.Buffers;
using System.Text.Json;
using Crid.Core.Networking;
using Google.Protobuf;
using Runtime.V1;

namespace Crid.Core.Sandboxes;

/// <summary>
/// The sandbox record, <c>&lt;state-dir&gt;/sandboxes/&lt;id&gt;/sandbox.json</c>: everything needed to
/// rebuild the sandbox after a daemon restart. The request's config is kept as protobuf bytes
/// (base64), so it round-trips exactly, whatever fields a newer kubelet sends.
/// </summary>
internal static class SandboxRecord
{
    public const string FileName = "sandbox.json";
    private const int FormatVersion = 1;

    public static byte[] Serialize(Sandbox sandbox)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("version", FormatVersion);
            w.WriteString("id", sandbox.Id);
            w.WriteString("name", sandbox.Name);
            w.WriteNumber("created_at", sandbox.CreatedAt);
            w.WriteString("state", sandbox.State == SandboxState.Ready ? "READY" : "NOTREADY");
            w.WriteString("runtime_handler", sandbox.RuntimeHandler);
            w.WriteString("hostname", sandbox.Hostname);
            w.WriteString("uuid", sandbox.Uuid);
            w.WriteNumber("infra_pid", sandbox.InfraPid);
            w.WriteStartObject("pins");
            foreach (var (type, path) in sandbox.Pins)
                w.WriteString(type, path);
            w.WriteEndObject();
            w.WriteBase64String("config", sandbox.Config.ToByteArray());
            if (sandbox.Network is { } n)
            {
                // Optional, so records written before pod networking existed still read as version 1.
                w.WriteStartObject("network");
                w.WriteString("name", n.NetworkName);
                w.WriteString("config_file", n.ConfigFile);
                w.WriteBoolean("attached", n.Attached);
                w.WriteStartArray("ips");
                foreach (var ip in n.Ips)
                    w.WriteStringValue(ip);
                w.WriteEndArray();
                w.WriteString("config", n.ConfigJson);
                w.WriteString("result", n.ResultJson);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <exception cref="FormatException">the file is not a record this daemon wrote.</exception>
    public static Sandbox Deserialize(ReadOnlySpan<byte> json, string dir)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            var root = doc.RootElement;
            if (root.GetProperty("version").GetInt32() != FormatVersion)
                throw new FormatException($"unknown record version {root.GetProperty("version")}");
            var pins = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var pin in root.GetProperty("pins").EnumerateObject())
                pins[pin.Name] = pin.Value.GetString() ?? throw new FormatException($"pin {pin.Name} has no path");
            return new Sandbox
            {
                Id = root.GetProperty("id").GetString()!,
                Name = root.GetProperty("name").GetString()!,
                CreatedAt = root.GetProperty("created_at").GetInt64(),
                RuntimeHandler = root.GetProperty("runtime_handler").GetString()!,
                Hostname = root.GetProperty("hostname").GetString()!,
                Uuid = root.GetProperty("uuid").GetString()!,
                Pins = pins,
                Config = PodSandboxConfig.Parser.ParseFrom(root.GetProperty("config").GetBytesFromBase64()),
                Dir = dir,
                State = root.GetProperty("state").GetString() == "READY" ? SandboxState.Ready : SandboxState.NotReady,
                InfraPid = root.GetProperty("infra_pid").GetInt32(),
                Network = root.TryGetProperty("network", out var n) ? ReadNetwork(n) : null,
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or InvalidProtocolBufferException)
        {
            throw new FormatException(e.Message, e);
        }
    }

    private static NetworkAttachment ReadNetwork(JsonElement n) => new()
    {
        NetworkName = n.GetProperty("name").GetString()!,
        ConfigFile = n.GetProperty("config_file").GetString()!,
        Attached = n.GetProperty("attached").GetBoolean(),
        Ips = n.GetProperty("ips").EnumerateArray().Select(ip => ip.GetString()!).ToList(),
        ConfigJson = n.GetProperty("config").GetString()!,
        ResultJson = n.GetProperty("result").GetString()!,
    };
}
