using System.Buffers;
using System.Text.Json;
using Crid.Core.Networking;
using Crid.Core.Stores;
using Google.Protobuf;
using Runtime.V1;

namespace Crid.Core.Sandboxes;

/// <summary>
/// A sandbox on disk, in its folder <c>&lt;state-dir&gt;/sandboxes/&lt;id&gt;/</c>: the record
/// <c>sandbox.json</c> holds what never changes, and the status the sandbox was created with, and is
/// written once, last in Run (its rename is the moment the sandbox exists for a restarted daemon);
/// <c>status.json</c> holds the status from its first change on, rewritten by every change (one
/// file fewer for Run to write: the first status needs no file of its own). The request's config is
/// kept as protobuf bytes (base64), so it round-trips exactly, whatever fields a newer kubelet sends.
/// Version 1 records (one file, status inside) are still read.
/// </summary>
internal static class SandboxRecord
{
    public const string FileName = "sandbox.json";
    public const string StatusFileName = "status.json";
    private const int FormatVersion = 2;

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
            w.WriteString("runtime_handler", sandbox.RuntimeHandler);
            w.WriteString("hostname", sandbox.Hostname);
            w.WriteString("uuid", sandbox.Uuid);
            w.WriteStartObject("pins");
            foreach (var (type, path) in sandbox.Pins)
                w.WriteString(type, path);
            w.WriteEndObject();
            w.WriteBase64String("config", sandbox.Config.ToByteArray());
            // The status the sandbox was created with: status.json, once a change writes it, wins.
            w.WriteStartObject("status");
            WriteStatusFields(w, sandbox.Status.Get());
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] SerializeStatus(SandboxStatus status)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            WriteStatusFields(w, status);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteStatusFields(Utf8JsonWriter w, SandboxStatus status)
    {
        w.WriteString("state", status.State == SandboxState.Ready ? "READY" : "NOTREADY");
        w.WriteNumber("infra_pid", status.InfraPid);
        if (status.Network is { } n)
        {
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
    }

    /// <summary>A new sandbox's status storage, writing to its folder's status.json (atomic, not durable: see Run).</summary>
    public static StatusStorage<SandboxStatus> NewStatus(string dir, SandboxStatus initial) =>
        new(initial, Path.Combine(dir, StatusFileName), SerializeStatus, durable: false);

    /// <summary>Reads a sandbox folder back: the record and its status.</summary>
    /// <exception cref="FormatException">the files are not a sandbox this daemon wrote.</exception>
    /// <exception cref="IOException">the record cannot be read (FileNotFoundException: there is none).</exception>
    public static Sandbox Load(string dir)
    {
        var record = File.ReadAllBytes(Path.Combine(dir, FileName));
        try
        {
            using var doc = JsonDocument.Parse(record);
            var root = doc.RootElement;
            var version = root.GetProperty("version").GetInt32();
            if (version is not (1 or FormatVersion))
                throw new FormatException($"unknown record version {version}");
            SandboxStatus status;
            if (version == 1)
            {
                status = ReadStatus(root);
            }
            else
            {
                var statusPath = Path.Combine(dir, StatusFileName);
                // Written by the first change of status; before it, the record's own "status" holds.
                // A host crash may have emptied status.json, or lost the record's status: the one
                // left, or NOTREADY, is then checked against the pins like any other.
                var statusBytes = File.Exists(statusPath) ? File.ReadAllBytes(statusPath) : [];
                if (statusBytes.Length > 0)
                {
                    using var statusDoc = JsonDocument.Parse(statusBytes);
                    status = ReadStatus(statusDoc.RootElement);
                }
                else if (root.TryGetProperty("status", out var initial))
                {
                    status = ReadStatus(initial);
                }
                else
                {
                    status = new SandboxStatus { State = SandboxState.NotReady };
                }
            }
            var pins = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var pin in root.GetProperty("pins").EnumerateObject())
                pins[pin.Name] = pin.Value.GetString() ?? throw new FormatException($"pin {pin.Name} has no path");
            var sandbox = new Sandbox
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
                Status = NewStatus(dir, status),
            };
            if (version == 1)
            {
                // Upgrade in place: the status gets its file, then the record loses the status.
                sandbox.Status.Save();
                Storage.AtomicFiles.Write(Path.Combine(dir, FileName), Serialize(sandbox), Storage.AtomicFiles.PrivateFile, durable: false);
            }
            return sandbox;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or InvalidProtocolBufferException)
        {
            throw new FormatException(e.Message, e);
        }
    }

    private static SandboxStatus ReadStatus(JsonElement root) => new()
    {
        State = root.GetProperty("state").GetString() == "READY" ? SandboxState.Ready : SandboxState.NotReady,
        InfraPid = root.GetProperty("infra_pid").GetInt32(),
        Network = root.TryGetProperty("network", out var n) ? ReadNetwork(n) : null,
    };

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
