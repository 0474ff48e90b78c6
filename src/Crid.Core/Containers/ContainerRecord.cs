using System.Buffers;
using System.Text.Json;
using Crid.Core.Storage;
using Crid.Core.Stores;
using Google.Protobuf;
using Runtime.V1;

namespace Crid.Core.Containers;

/// <summary>
/// A container on disk, in its folder <c>&lt;state-dir&gt;/containers/&lt;id&gt;/</c>: the record
/// <c>container.json</c> holds what never changes and is written once, last in Create, after the
/// runtime made the container (its rename is the moment the container exists for a restarted
/// daemon: a create cut short before it leaves a folder recovery deletes, and a runtime container
/// the runtime's recovery deletes); <c>status.json</c> holds the status, rewritten by every change.
/// The config is kept as protobuf bytes (base64), so it round-trips exactly.
/// </summary>
internal static class ContainerRecord
{
    public const string FileName = "container.json";
    public const string StatusFileName = "status.json";
    private const int FormatVersion = 1;

    public static byte[] Serialize(Container c)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("version", FormatVersion);
            w.WriteString("id", c.Id);
            w.WriteString("name", c.Name);
            w.WriteString("sandbox_id", c.SandboxId);
            w.WriteNumber("created_at", c.CreatedAt);
            w.WriteString("image_id", c.ImageId);
            w.WriteString("image_name", c.ImageName);
            w.WriteString("image_ref", c.ImageRef);
            w.WriteString("runtime_handler", c.RuntimeHandler);
            w.WriteString("log_path", c.LogPath);
            w.WriteNumber("stop_signal", c.StopSignal);
            w.WriteBase64String("config", c.Config.ToByteArray());
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] SerializeStatus(ContainerStatus s)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("state", s.State.ToString().ToUpperInvariant());
            w.WriteNumber("pid", s.Pid);
            w.WriteNumber("started_at", s.StartedAt);
            w.WriteNumber("finished_at", s.FinishedAt);
            w.WriteNumber("exit_code", s.ExitCode);
            w.WriteString("reason", s.Reason);
            w.WriteString("message", s.Message);
            if (s.Resources is { } r)
                w.WriteBase64String("resources", r.ToByteArray());
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// A new container's status storage, writing status.json atomically, and durably (fsync) once
    /// the container has exited: a recorded exit outlives a host crash. The states before it do not
    /// need to: a host crash kills every container, so "created" or "running" is false after it
    /// whatever the file says, and the restarted daemon records the lost exit (the runtime no
    /// longer knows the container). Measured, the fsync of "running" cost StartContainer one ext4
    /// journal commit (docs/benchmark.md, pod + container).
    /// </summary>
    public static StatusStorage<ContainerStatus> NewStatus(string dir, ContainerStatus initial) =>
        new(initial, Path.Combine(dir, StatusFileName), SerializeStatus, durableWhen: s => s.State == ContainerState.Exited);

    /// <summary>
    /// Writes the record: the moment the container exists on disk. Atomic, not durable, as the
    /// sandbox's record (SandboxManager.WritePodFiles): a record lost or left empty by a host crash is
    /// a folder Recover deletes, a container that died with the host; and the sandbox record it
    /// needs is not fsynced either, so an fsync here would not make the container outlive the crash.
    /// </summary>
    public static void Write(Container c) =>
        AtomicFiles.Write(Path.Combine(c.Dir, FileName), Serialize(c), AtomicFiles.PrivateFile, durable: false);

    /// <summary>Reads a container folder back: the record and its status.</summary>
    /// <exception cref="FormatException">the files are not a container this daemon wrote.</exception>
    /// <exception cref="IOException">the record cannot be read (FileNotFoundException: there is none).</exception>
    public static Container Load(string dir)
    {
        var record = File.ReadAllBytes(Path.Combine(dir, FileName));
        try
        {
            using var doc = JsonDocument.Parse(record);
            var root = doc.RootElement;
            var version = root.GetProperty("version").GetInt32();
            if (version != FormatVersion)
                throw new FormatException($"unknown record version {version}");
            ContainerStatus status;
            if (ReadIfPresent(Path.Combine(dir, StatusFileName)) is { Length: > 0 } statusBytes)
            {
                using var statusDoc = JsonDocument.Parse(statusBytes);
                status = ReadStatus(statusDoc.RootElement);
            }
            else
            {
                // Written before the record; lost only with a host crash, which the container did not survive either.
                status = new ContainerStatus { State = ContainerState.Unknown };
            }
            return new Container
            {
                Id = root.GetProperty("id").GetString()!,
                Name = root.GetProperty("name").GetString()!,
                SandboxId = root.GetProperty("sandbox_id").GetString()!,
                CreatedAt = root.GetProperty("created_at").GetInt64(),
                ImageId = root.GetProperty("image_id").GetString()!,
                ImageName = root.GetProperty("image_name").GetString()!,
                ImageRef = root.GetProperty("image_ref").GetString()!,
                RuntimeHandler = root.GetProperty("runtime_handler").GetString()!,
                LogPath = root.GetProperty("log_path").GetString()!,
                StopSignal = root.GetProperty("stop_signal").GetInt32(),
                Config = ContainerConfig.Parser.ParseFrom(root.GetProperty("config").GetBytesFromBase64()),
                Dir = dir,
                Status = NewStatus(dir, status),
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or InvalidProtocolBufferException or ArgumentException)
        {
            throw new FormatException(e.Message, e);
        }
    }

    private static byte[]? ReadIfPresent(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    private static ContainerStatus ReadStatus(JsonElement root) => new()
    {
        State = Enum.Parse<ContainerState>(root.GetProperty("state").GetString()!, ignoreCase: true),
        Pid = root.GetProperty("pid").GetInt32(),
        StartedAt = root.GetProperty("started_at").GetInt64(),
        FinishedAt = root.GetProperty("finished_at").GetInt64(),
        ExitCode = root.GetProperty("exit_code").GetInt32(),
        Reason = root.GetProperty("reason").GetString()!,
        Message = root.GetProperty("message").GetString()!,
        Resources = root.TryGetProperty("resources", out var r) ? LinuxContainerResources.Parser.ParseFrom(r.GetBytesFromBase64()) : null,
    };
}
