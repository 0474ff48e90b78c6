namespace Crid.Linux;

/// <summary>File-level helpers for pins: mount state, inodes, pin creation and removal.</summary>
internal static unsafe class NsFiles
{
    internal static bool IsNsfs(string path)
    {
        byte* buf = stackalloc byte[256];
        if (Interop.StatFs(path, buf) != 0)
        {
            return false;
        }

        return *(long*)buf == Interop.NSFS_MAGIC;
    }

    /// <summary>stat(2)'s st_ino of the path, following symlinks (so /proc/pid/ns/x gives the namespace).</summary>
    internal static ulong Inode(string path)
    {
        Interop.Statx st;
        if (Interop.StatxPath(Interop.AT_FDCWD, path, 0, Interop.STATX_BASIC_STATS, &st) != 0)
        {
            throw Errors.Last("stat", null, "statx", path);
        }

        return st.Ino;
    }

    internal static bool TryInode(string path, out ulong inode)
    {
        Interop.Statx st;
        if (Interop.StatxPath(Interop.AT_FDCWD, path, 0, Interop.STATX_BASIC_STATS, &st) != 0)
        {
            inode = 0;
            return false;
        }

        inode = st.Ino;
        return true;
    }

    /// <summary>mkdir -p with mode 0755; a path that exists but is no folder is ENOTDIR.</summary>
    internal static void EnsureDirTree(string path, string? type)
    {
        if (Interop.Mkdir(path, 0x1ed /* 0755 */) == 0)
        {
            return;
        }

        int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        if (errno == Interop.EEXIST && Directory.Exists(path))
        {
            return;
        }

        string? parent = System.IO.Path.GetDirectoryName(path);
        if (errno == Interop.ENOENT && parent is not null && parent != path)
        {
            EnsureDirTree(parent, type);
            if (Interop.Mkdir(path, 0x1ed) == 0)
            {
                return;
            }

            errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno == Interop.EEXIST && Directory.Exists(path))
            {
                return;
            }
        }

        throw Errors.Of(errno == Interop.EEXIST ? Interop.ENOTDIR : errno, "create folder", type, "mkdir", path);
    }

    /// <summary>Creates the empty mount point; O_EXCL because a uuid collision must never reuse a pin.</summary>
    internal static void CreatePinFile(string path, string type, bool chown, uint uid, uint gid)
    {
        using SafeFd fd = Interop.Open(path, Interop.O_RDONLY | Interop.O_CREAT | Interop.O_EXCL | Interop.O_CLOEXEC, 0x124 /* 0444 */);
        if (fd.IsInvalid)
        {
            throw Errors.Last("create pin", type, "open", path);
        }

        // Chown the mount point itself: once the nsfs file is mounted on top, stat shows the
        // nsfs inode, which is immutable (S_IMMUTABLE) and cannot be chowned.
        if (chown && Interop.FChown(fd, uid, gid) != 0)
        {
            throw Errors.Last("chown pin", type, "fchown", path);
        }
    }

    internal static void BindMount(string source, string pin, string type)
    {
        if (Interop.Mount(source, pin, null, Interop.MS_BIND, 0) != 0)
        {
            throw Errors.Last("bind mount", type, "mount", pin);
        }
    }

    internal static void RemovePin(string type, string path)
    {
        if (Interop.Umount2(path, Interop.MNT_DETACH) != 0)
        {
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();

            // EINVAL: not a mount point (already unmounted); ENOENT: already deleted.
            if (errno != Interop.EINVAL && errno != Interop.ENOENT)
            {
                throw Errors.Of(errno, "remove pin", type, "umount2", path);
            }
        }

        if (Interop.Unlink(path) != 0)
        {
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno != Interop.ENOENT)
            {
                throw Errors.Of(errno, "remove pin", type, "unlink", path);
            }
        }
    }

    /// <summary>Writes a whole value in one write(2), as /proc/sys and uid_map files require.</summary>
    internal static void WriteOnce(string path, string value, string step, string? type)
    {
        using SafeFd fd = Interop.Open(path, Interop.O_WRONLY | Interop.O_CLOEXEC, 0);
        if (fd.IsInvalid)
        {
            throw Errors.Last(step, type, "open", path);
        }

        int max = System.Text.Encoding.UTF8.GetMaxByteCount(value.Length);
        Span<byte> buf = max <= 1024 ? stackalloc byte[max] : new byte[max];
        int len = System.Text.Encoding.UTF8.GetBytes(value, buf);
        fixed (byte* p = buf)
        {
            nint n = Interop.Write(fd, p, len);
            if (n < 0)
            {
                throw Errors.Last(step, type, "write", path);
            }

            if (n != len)
            {
                throw Errors.Of(Interop.EIO, step, type, "write (short)", path);
            }
        }
    }
}
