namespace Crid.Linux;

/// <summary>
/// A namespace kept alive by a bind mount of its nsfs file at &lt;dir&gt;/&lt;type&gt;ns/&lt;uuid&gt;.
/// Everything is derived from the path, so a pin survives a daemon restart.
/// </summary>
public sealed class PinnedNamespace
{
    internal static readonly string[] Types = ["net", "ipc", "uts", "user", "pid"];

    internal PinnedNamespace(string type, string path)
    {
        Type = type;
        Path = path;
    }

    /// <summary>"net", "ipc", "uts", "user" or "pid".</summary>
    public string Type { get; }

    public string Path { get; }

    /// <summary>Where the pin of a <paramref name="type"/> namespace named <paramref name="uuid"/> lives: &lt;dir&gt;/&lt;type&gt;ns/&lt;uuid&gt;.</summary>
    public static string PathFor(string namespacesDir, string type, string uuid) =>
        System.IO.Path.Combine(namespacesDir, type + "ns", uuid);

    /// <summary>Rebuilds a pin from its path; the type comes from the parent folder (netns, ipcns, ...).</summary>
    public static PinnedNamespace FromPath(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string? folder = System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(path));
        foreach (string type in Types)
        {
            if (folder == type + "ns")
            {
                return new PinnedNamespace(type, path);
            }
        }

        throw new ArgumentException($"{path}: parent folder \"{folder}\" is not one of netns, ipcns, utsns, userns, pidns", nameof(path));
    }

    /// <summary>All pins (mounted or not) under a namespaces dir, e.g. to reconcile after a restart.</summary>
    public static IReadOnlyList<PinnedNamespace> List(string namespacesDir)
    {
        var pins = new List<PinnedNamespace>();
        foreach (string type in Types)
        {
            string dir = System.IO.Path.Combine(namespacesDir, type + "ns");
            if (!Directory.Exists(dir))
            {
                continue;
            }

            foreach (string file in Directory.EnumerateFiles(dir))
            {
                pins.Add(new PinnedNamespace(type, file));
            }
        }

        return pins;
    }

    /// <summary>True when the path is an nsfs mount, i.e. still pins a namespace.</summary>
    public bool IsMounted => NsFiles.IsNsfs(Path);

    /// <summary>The inode of the pinned namespace (as in /proc/pid/ns/type), or 0 when not mounted.</summary>
    public ulong Inode => IsMounted ? NsFiles.Inode(Path) : 0;

    /// <summary>
    /// Unmounts (lazily, MNT_DETACH, as cri-o does: a namespace still in use elsewhere lives on)
    /// and deletes the file. Idempotent: "not mounted" and "gone" count as done.
    /// </summary>
    public void Remove() => NsFiles.RemovePin(Type, Path);

    public override string ToString() => $"{Type}:{Path}";
}
