using System.Text;
using System.Text.Json;
using Crid.Core.Networking;
using Crid.Core.Storage;

namespace Crid.Core.Sandboxes;

/// <summary>One entry of <see cref="PinIntents"/>: the sandbox a uuid's pins are for, and the network its Run attaches, if any.</summary>
internal sealed record PinIntent(string SandboxId, NetworkIntent? Network);

/// <summary>
/// What pins and pod networks are crid's: before a pod's first namespace is pinned, its uuid is
/// recorded here (<c>&lt;state-dir&gt;/pins/&lt;uuid&gt;</c>) with the sandbox id and, when the pod
/// gets a CNI network, everything its ADD runs with (<see cref="NetworkIntent"/>); the entry goes
/// only when the sandbox is removed, after its pins and its network. Recovery cleans up only pins,
/// infra processes and networks whose uuid has an entry and no sandbox record: the namespaces folder
/// may be /var/run, shared with `ip netns`, cri-o's pinns and other crids, whose uuid-named pins look
/// exactly like ours and are none of our business. Once the sandbox's record is written, the record
/// (its status's attachment) is what says whether a DEL is owed; the entry's network part only
/// matters for a Run that never got that far.
/// </summary>
/// <remarks>
/// Atomic, not durable, like the sandbox files: an entry must outlive a daemon crash (the page cache
/// does), and after a host crash there is no pinned namespace or veth left for it to claim (a
/// host-local address file is: that is the one thing a host crash can still leak, as with cri-o).
/// An entry is one write, before the first pin: the network's pin path is known from the uuid, so
/// the network part costs Run no extra write.
/// </remarks>
internal sealed class PinIntents(string dir)
{
    public string Dir => dir;

    /// <summary>
    /// Records that the pins named <paramref name="uuid"/> are about to be made for sandbox
    /// <paramref name="sandboxId"/>, and the CNI ADD <paramref name="network"/> that will follow.
    /// </summary>
    /// <remarks>
    /// Written in place, without a temporary and a rename: the uuid is new (the file is created
    /// with O_EXCL), and a crash in the middle of this write comes before any pin or network exists,
    /// so an entry cut short has nothing to claim but its uuid, which its name holds.
    /// </remarks>
    public void Record(string uuid, string sandboxId, NetworkIntent? network = null)
    {
        var content = Serialize(sandboxId, network);
        try
        {
            AtomicFiles.WriteNew(Path.Combine(dir, uuid), content, AtomicFiles.PrivateFile);
        }
        catch (Crid.Linux.SyscallException e) when (e.ErrnoName == "ENOENT")
        {
            // The first entry of a fresh state dir (no stat on every Run to learn it).
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            AtomicFiles.WriteNew(Path.Combine(dir, uuid), content, AtomicFiles.PrivateFile);
        }
    }

    /// <summary>Drops the entry; its pins and network must be gone already. Idempotent.</summary>
    public void Remove(string uuid)
    {
        if (uuid.Length > 0)
            File.Delete(Path.Combine(dir, uuid));
    }

    /// <summary>
    /// Every entry by uuid. Leftover temporary files are deleted. An entry that does not parse still
    /// claims its pins (its uuid is what matters for them), with no network to release.
    /// </summary>
    public IReadOnlyDictionary<string, PinIntent> All()
    {
        var entries = new Dictionary<string, PinIntent>(StringComparer.Ordinal);
        if (!Directory.Exists(dir))
            return entries;
        foreach (var file in Directory.EnumerateFiles(dir))
        {
            var name = Path.GetFileName(file);
            if (Guid.TryParseExact(name, "D", out _))
            {
                try { entries[name] = Parse(File.ReadAllBytes(file)); }
                catch (FileNotFoundException) { }
            }
            else if (name.StartsWith('.'))
            {
                File.Delete(file);
            }
        }
        return entries;
    }

    internal static byte[] Serialize(string sandboxId, NetworkIntent? network)
    {
        // Without a network, the bare id, as entries were before networks were recorded.
        if (network is null)
            return Encoding.ASCII.GetBytes(sandboxId);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("sandbox", sandboxId);
            w.WritePropertyName("network");
            network.WriteTo(w);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    internal static PinIntent Parse(byte[] content)
    {
        var text = Encoding.UTF8.GetString(content).Trim();
        if (!text.StartsWith('{'))
            return new PinIntent(text, null);
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            var id = root.TryGetProperty("sandbox", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "";
            var network = root.TryGetProperty("network", out var n) ? NetworkIntent.ReadFrom(n) : null;
            return new PinIntent(id, network);
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            return new PinIntent("", null);
        }
    }
}
