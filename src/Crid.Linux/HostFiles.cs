namespace Crid.Linux;

/// <summary>File facts and changes that .NET's own file APIs do not offer: file type, ownership, folder fsync.</summary>
public static unsafe class HostFiles
{
    /// <summary>True when <paramref name="path"/> is a Unix socket (not following a final symlink).</summary>
    public static bool IsSocket(string path)
    {
        Interop.Statx st;
        return Interop.StatxPath(Interop.AT_FDCWD, path, Interop.AT_SYMLINK_NOFOLLOW, Interop.STATX_BASIC_STATS, &st) == 0
            && (st.Mode & Interop.S_IFMT) == Interop.S_IFSOCK;
    }

    /// <summary>Changes the owning group of <paramref name="path"/>, keeping its owner.</summary>
    public static void SetGroup(string path, int gid)
    {
        // chown(2): an id of -1 leaves that id unchanged.
        if (Interop.LChown(path, uint.MaxValue, (uint)gid) != 0)
            throw Errors.LastIo("lchown", path);
    }

    /// <summary>
    /// fsync(2) of a folder: makes the names created or renamed inside it durable. .NET cannot open a
    /// folder as a file handle, so this goes to libc.
    /// </summary>
    public static void SyncDirectory(string path)
    {
        using var fd = Interop.Open(path, Interop.O_RDONLY | Interop.O_DIRECTORY | Interop.O_CLOEXEC, 0);
        if (fd.IsInvalid)
            throw Errors.LastIo("open", path);
        if (Interop.Fsync(fd) != 0)
            throw Errors.LastIo("fsync", path);
    }
}
