using System.Text;
using Crid.Core.Storage;

namespace Crid.Core.Sandboxes;

/// <summary>
/// What pins are crid's: before a pod's first namespace is pinned, its uuid is recorded here
/// (<c>&lt;state-dir&gt;/pins/&lt;uuid&gt;</c>, holding the sandbox id), and the entry goes only
/// when the sandbox is removed, after its pins. Recovery cleans up only pins and infra processes
/// whose uuid has an entry: the namespaces folder may be /var/run, shared with `ip netns`, cri-o's
/// pinns and other crids, whose uuid-named pins look exactly like ours and are none of our business.
/// </summary>
/// <remarks>
/// Atomic, not durable, like the sandbox files: an entry must outlive a daemon crash (the page cache
/// does), and after a host crash there is no pinned namespace left for it to claim.
/// </remarks>
internal sealed class PinIntents(string dir)
{
    public string Dir => dir;

    /// <summary>Records that the pins named <paramref name="uuid"/> are about to be made for sandbox <paramref name="sandboxId"/>.</summary>
    public void Record(string uuid, string sandboxId)
    {
        if (!Directory.Exists(dir))
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        AtomicFiles.Write(Path.Combine(dir, uuid), Encoding.ASCII.GetBytes(sandboxId), AtomicFiles.PrivateFile, durable: false);
    }

    /// <summary>Drops the entry; its pins must be gone already. Idempotent.</summary>
    public void Remove(string uuid)
    {
        if (uuid.Length > 0)
            File.Delete(Path.Combine(dir, uuid));
    }

    /// <summary>Every entry: uuid → the sandbox id it was recorded for. Leftover temporary files are deleted.</summary>
    public IReadOnlyDictionary<string, string> All()
    {
        var entries = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!Directory.Exists(dir))
            return entries;
        foreach (var file in Directory.EnumerateFiles(dir))
        {
            var name = Path.GetFileName(file);
            if (Guid.TryParseExact(name, "D", out _))
            {
                try { entries[name] = File.ReadAllText(file).Trim(); }
                catch (FileNotFoundException) { }
            }
            else if (name.StartsWith('.'))
            {
                File.Delete(file);
            }
        }
        return entries;
    }
}
