using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>File facts and changes that .NET's own file APIs do not offer: file type, ownership, folder fsync.</summary>
public static class HostFiles
{
    /// <summary>True when <paramref name="path"/> is a Unix socket (not following a final symlink).</summary>
    public static bool IsSocket(string path)
        => Interop.Statx(path, AT_SYMLINK_NOFOLLOW, STATX_TYPE, out var st) == 0 && (st.stx_mode & 0xF000) == 0xC000 /* S_IFSOCK */;

    /// <summary>Changes the owning group of <paramref name="path"/>, keeping its owner.</summary>
    public static void SetGroup(string path, int gid)
        => Interop.CheckIo(Interop.LChown(path, uint.MaxValue, (uint)gid), "lchown", path);

    /// <summary>Changes the owner and group of <paramref name="path"/> (not following a final symlink).</summary>
    public static void SetOwner(string path, uint uid, uint gid)
        => Interop.CheckIo(Interop.LChown(path, uid, gid), "lchown", path);

    /// <summary>
    /// fsync(2) of a folder: makes the names created or renamed inside it durable. .NET cannot open a
    /// folder as a file handle, so this goes to libc.
    /// </summary>
    public static void SyncDirectory(string path)
    {
        using var fd = Interop.OpenChecked(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        Interop.CheckIo(Interop.Fsync(fd), "fsync", path);
    }
}
