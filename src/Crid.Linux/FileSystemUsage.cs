namespace Crid.Linux;

/// <summary>How full the filesystem holding a path is, as statvfs(3) reports it, and where it is mounted.</summary>
public sealed record FileSystemUsage(string MountPoint, ulong UsedBytes, ulong UsedInodes)
{
    public static FileSystemUsage Of(string path)
    {
        Interop.CheckIo(Interop.StatVfs(path, out var st), "statvfs", path);
        ulong blocks = st.f_blocks, free = st.f_bfree, files = st.f_files, freeFiles = st.f_ffree, fragment = st.f_frsize;
        return new FileSystemUsage(MountPointOf(path), (blocks - free) * fragment, files - freeFiles);
    }

    /// <summary>The longest mount point in /proc/self/mountinfo that contains <paramref name="path"/>.</summary>
    internal static string MountPointOf(string path)
    {
        var full = Path.GetFullPath(path);
        var best = "/";
        foreach (var mount in MountTable.OfSelf())
        {
            var point = mount.MountPoint;
            if (point.Length > best.Length && (full == point || full.StartsWith(point + "/", StringComparison.Ordinal)))
                best = point;
        }
        return best;
    }
}
