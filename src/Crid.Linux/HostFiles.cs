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
    /// Creates <paramref name="path"/>, which must not exist (O_EXCL), holding <paramref name="content"/>:
    /// open(2), write(2), close(2) and nothing else (.NET's FileStream adds an fstat, a flock and an
    /// lseek per file, and this is on the path of every RunPodSandbox). The mode is subject to the
    /// umask, as with open(2). <paramref name="owner"/> is set with fchown(2) before any byte is
    /// written. On failure the file is unlinked again (best effort) and the error names the path.
    /// </summary>
    public static void WriteNew(string path, ReadOnlySpan<byte> content, UnixFileMode mode, (uint Uid, uint Gid)? owner = null)
    {
        using var fd = Interop.OpenChecked(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (uint)mode);
        try
        {
            if (owner is { } o)
            {
                Interop.CheckIo(Interop.FChown(fd, o.Uid, o.Gid), "fchown", path);
            }

            while (content.Length > 0)
            {
                long n = Interop.Write(fd, content);
                if (n < 0)
                {
                    if (Interop.LastErrno == EINTR)
                    {
                        continue;
                    }

                    throw Interop.Error("write", path);
                }

                content = content[(int)n..];
            }
        }
        catch
        {
            Interop.Unlink(path);
            throw;
        }
    }

    /// <summary>rename(2): atomically replaces <paramref name="to"/> by <paramref name="from"/> (same filesystem).</summary>
    public static void Rename(string from, string to)
        => Interop.CheckIo(Interop.Rename(from, to), "rename", to);

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
