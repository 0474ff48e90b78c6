using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>File-level helpers for pins: mount state, inodes, pin creation and removal.</summary>
internal static unsafe class NsFiles
{
    // statfs(2)'s f_type of the nsfs pseudo filesystem (include/uapi/linux/magic.h).
    private const long NSFS_MAGIC = 0x6e736673;

    // ioctl_ns(2): NS_GET_USERNS = _IO(0xb7, 0x1), a descriptor of the user namespace owning a namespace.
    private const int NS_GET_USERNS = 0xb701;

    internal static bool IsNsfs(string path) => Interop.StatFsType(path, out long type) == 0 && type == NSFS_MAGIC;

    /// <summary>stat(2)'s st_ino of the path, following symlinks (so /proc/pid/ns/x gives the namespace).</summary>
    internal static ulong Inode(string path)
    {
        Interop.CheckIo(Interop.Statx(path, 0, STATX_INO, out var st), "statx", path, "stat");
        return st.stx_ino;
    }

    internal static bool TryInode(string path, out ulong inode)
    {
        bool ok = Interop.Statx(path, 0, STATX_INO, out var st) == 0;
        inode = ok ? st.stx_ino : 0;
        return ok;
    }

    /// <summary>The inode of the user namespace that owns the namespace at <paramref name="path"/> (ioctl_ns(2) NS_GET_USERNS).</summary>
    internal static ulong OwnerUserNamespace(string path)
    {
        using SafeFd ns = Interop.OpenChecked(path, O_RDONLY | O_CLOEXEC);
        using SafeFd owner = SafeFd.Check(Interop.Ioctl(ns, NS_GET_USERNS, null), "ioctl NS_GET_USERNS", path);
        Interop.CheckIo(Interop.Statx(owner, STATX_INO, out var st), "statx", path);
        return st.stx_ino;
    }

    /// <summary>mkdir -p with mode 0755; a path that exists but is no folder is ENOTDIR.</summary>
    internal static void EnsureDirTree(string path, string? type)
    {
        if (Interop.Mkdir(path, 0x1ed /* 0755 */) == 0)
        {
            return;
        }

        int errno = Interop.LastErrno;
        if (errno == EEXIST && Directory.Exists(path))
        {
            return;
        }

        string? parent = System.IO.Path.GetDirectoryName(path);
        if (errno == ENOENT && parent is not null && parent != path)
        {
            EnsureDirTree(parent, type);
            if (Interop.Mkdir(path, 0x1ed) == 0)
            {
                return;
            }

            errno = Interop.LastErrno;
            if (errno == EEXIST && Directory.Exists(path))
            {
                return;
            }
        }

        throw Interop.Error(errno == EEXIST ? ENOTDIR : errno, "mkdir", path, "create folder", type);
    }

    /// <summary>Creates the empty mount point; O_EXCL because a uuid collision must never reuse a pin.</summary>
    internal static void CreatePinFile(string path, string type, bool chown, uint uid, uint gid)
    {
        using SafeFd fd = Interop.OpenChecked(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0x124 /* 0444 */, "create pin", type);

        // Chown the mount point itself: once the nsfs file is mounted on top, stat shows the
        // nsfs inode, which is immutable (S_IMMUTABLE) and cannot be chowned.
        if (chown)
        {
            Interop.CheckIo(Interop.FChown(fd, uid, gid), "fchown", path, "chown pin", type);
        }
    }

    internal static void BindMount(string source, string pin, string type)
        => Interop.CheckIo(Interop.Mount(source, pin, null, MS_BIND, null), "mount", pin, "bind mount", type);

    internal static void RemovePin(string type, string path)
    {
        // EINVAL: not a mount point (already unmounted); ENOENT: already deleted.
        if (Interop.Umount2(path, MNT_DETACH) != 0 && Interop.LastErrno is var umountErrno && umountErrno != EINVAL && umountErrno != ENOENT)
        {
            throw Interop.Error(umountErrno, "umount2", path, "remove pin", type);
        }

        if (Interop.Unlink(path) != 0 && Interop.LastErrno is var unlinkErrno && unlinkErrno != ENOENT)
        {
            throw Interop.Error(unlinkErrno, "unlink", path, "remove pin", type);
        }
    }

    /// <summary>Writes a whole value in one write(2), as /proc/sys and uid_map files require.</summary>
    internal static void WriteOnce(string path, string value, string step, string? type)
    {
        using SafeFd fd = Interop.OpenChecked(path, O_WRONLY | O_CLOEXEC, 0, step, type);

        int max = System.Text.Encoding.UTF8.GetMaxByteCount(value.Length);
        Span<byte> buf = max <= 1024 ? stackalloc byte[max] : new byte[max];
        int len = System.Text.Encoding.UTF8.GetBytes(value, buf);
        long n = Interop.Write(fd, buf[..len]);
        if (n < 0)
        {
            throw Interop.Error("write", path, step, type);
        }

        if (n != len)
        {
            // The kernel parsed a prefix and stopped (proc_dointvec on "1 2 3 4"): the value is malformed.
            throw Interop.Error(EIO, "write (short)", path, step, type);
        }
    }
}
