using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// Copies what an image holds at one of its VOLUME paths into the folder that becomes that volume,
/// as containerd does when it creates a container (docker did the same; cri-o's default, mkdir, does
/// not): a VOLUME /data over a folder with files starts with those files.
/// </summary>
/// <remarks>
/// The image is hostile until proven otherwise. The volume path is resolved with openat2(2)
/// RESOLVE_IN_ROOT, so a symlink in it (to "/", to "../../etc") stays inside the rootfs; a path that
/// resolves to the rootfs's root itself (what both of those do) is not copied at all. Below it the
/// walk is by descriptor: every name is opened or created relative to its parent's descriptor with
/// O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, so a symlink is copied as a symlink and never followed, and
/// nothing is written outside <c>destination</c>. Owners, modes (set-id bits included, after the
/// chown that would clear them), times, symlinks, device nodes, FIFOs, hard links between the
/// copied files and extended attributes are kept, as the layer unpacker keeps them (overlayfs's own
/// trusted.overlay.* are skipped there and here).
/// </remarks>
public static unsafe class VolumeContent
{
    private const int S_IFMT = 0xF000, S_IFDIR = 0x4000, S_IFREG = 0x8000, S_IFLNK = 0xA000,
        S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFIFO = 0x1000;
    private const ulong ResolveInRoot = 0x10 /* RESOLVE_IN_ROOT */ | 0x02 /* RESOLVE_NO_MAGICLINKS */ | 0x01 /* RESOLVE_NO_XDEV */;
    private static readonly uint Mask = STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID | STATX_INO | STATX_NLINK | STATX_ATIME | STATX_MTIME;

    /// <summary>Folders deeper than this below the volume are refused: the walk recurses.</summary>
    public const int MaxDepth = 256;

    /// <summary>
    /// Copies the content of <paramref name="volumePath"/> inside <paramref name="rootfs"/> into the
    /// existing, empty folder <paramref name="destination"/>, and gives that folder the source
    /// folder's owner, mode and attributes.
    /// </summary>
    /// <returns>false when there is nothing to copy: the path does not exist in the image, is not a
    /// folder there, or resolves to the rootfs's root.</returns>
    /// <exception cref="SyscallException">a read or write failed; the caller deletes the destination.</exception>
    public static bool Copy(string rootfs, string volumePath, string destination)
    {
        using var root = Interop.OpenChecked(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        var relative = volumePath.Trim('/');
        if (relative.Length == 0)
            return false;
        using var source = OpenInRoot(root, relative, out var errno);
        if (source is null)
        {
            // ELOOP: links that loop; EXDEV: something mounted on the way (a rootfs just mounted has nothing).
            return errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EXDEV
                ? false
                : throw Interop.Error(errno, "openat2", $"{rootfs}/{relative}");
        }
        Interop.CheckIo(Interop.Statx(root, STATX_INO, out var rootStat), "statx", rootfs);
        Interop.CheckIo(Interop.Statx(source, Mask, out var sourceStat), "statx", $"{rootfs}/{relative}");
        if (sourceStat.stx_ino == rootStat.stx_ino && sourceStat.stx_dev_major == rootStat.stx_dev_major && sourceStat.stx_dev_minor == rootStat.stx_dev_minor)
            return false;
        using var target = Interop.OpenChecked(destination, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        using var copy = new Walk(destination);
        copy.Folder(source, target, destination, 0);
        copy.FinishOpen(source, target, sourceStat, destination);
        return true;
    }

    private static SafeFd? OpenInRoot(SafeFd root, string relative, out int errno)
    {
        var how = new open_how { flags = (ulong)(O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY), resolve = ResolveInRoot };
        using var dir = root.Borrow();
        fixed (byte* p = Interop.Utf8Z(relative))
        {
            while (true)
            {
                int fd = openat2(dir.Fd, p, &how, (size_t)(ulong)sizeof(open_how));
                if (fd >= 0)
                {
                    errno = 0;
                    return SafeFd.FromResult(fd);
                }
                errno = Interop.LastErrno;
                // EAGAIN: RESOLVE_IN_ROOT raced with a rename and asks to be retried.
                if (errno != EAGAIN)
                    return null;
            }
        }
    }

    private sealed class Walk(string destination) : IDisposable
    {
        // Files with more than one link, by (device, inode): the first copy, open O_PATH, for linkat.
        private readonly Dictionary<(uint, uint, ulong), SafeFd> _links = [];
        private const int MaxLinks = 1024;

        public void Folder(SafeFd source, SafeFd target, string path, int depth)
        {
            if (depth >= MaxDepth)
                throw new UnsafePathException($"{path}: more than {MaxDepth} folders deep; refused", ELOOP, path);
            foreach (var name in Names(source, path))
                Entry(source, target, name, $"{path}/{name}", depth);
        }

        private void Entry(SafeFd source, SafeFd target, string name, string path, int depth)
        {
            using var n = new NativeUtf8(name);
            statx st;
            using (var s = source.Borrow())
            {
                if (LibC.statx(s.Fd, n.Ptr, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, Mask, &st) != 0)
                    throw Interop.Error("statx", path);
            }
            var mode = (uint)st.stx_mode;
            switch ((int)(mode & S_IFMT))
            {
                case S_IFDIR:
                {
                    Check(mkdirat(Fd(target), n.Ptr, (mode_t)0x1C0), "mkdirat", path);
                    using var from = OpenAt(source, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0, path);
                    using var to = OpenAt(target, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0, path);
                    Folder(from, to, path, depth + 1);
                    FinishOpen(from, to, st, path);
                    break;
                }
                case S_IFREG:
                {
                    var key = (st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
                    if (st.stx_nlink > 1 && _links.TryGetValue(key, out var first))
                    {
                        using var proc = new NativeUtf8($"/proc/self/fd/{Fd(first)}");
                        Check(linkat(AT_FDCWD, proc.Ptr, Fd(target), n.Ptr, AT_SYMLINK_FOLLOW), "linkat", path);
                        break;
                    }
                    using (var from = OpenAt(source, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0, path))
                    using (var to = OpenAt(target, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0x180, path))
                    {
                        CopyData(from, to, path);
                        FinishOpen(from, to, st, path);
                    }
                    if (st.stx_nlink > 1 && _links.Count < MaxLinks)
                        _links[key] = OpenAt(target, n, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, path);
                    break;
                }
                case S_IFLNK:
                {
                    var link = ReadLink(source, n, path);
                    using var t = new NativeUtf8(link);
                    Check(symlinkat(t.Ptr, Fd(target), n.Ptr), "symlinkat", path);
                    FinishAt(source, target, name, n, st, path, isSymlink: true);
                    break;
                }
                case S_IFCHR or S_IFBLK or S_IFIFO:
                {
                    // makedev(3) for glibc's 64-bit dev_t.
                    uint major = st.stx_rdev_major, minor = st.stx_rdev_minor;
                    ulong dev = ((ulong)(major & 0xfffff000) << 32) | ((ulong)(major & 0xfff) << 8)
                        | ((ulong)(minor & 0xffffff00) << 12) | (minor & 0xff);
                    Check(mknodat(Fd(target), n.Ptr, (mode_t)((mode & S_IFMT) | 0x180), (dev_t)dev), "mknodat", path);
                    FinishAt(source, target, name, n, st, path, isSymlink: false);
                    break;
                }
                default:
                    // A socket is a live endpoint of some process, not content: docker and containerd skip it too.
                    break;
            }
        }

        /// <summary>Owner, then mode (chown clears set-id bits), attributes, times; on descriptors of both.</summary>
        public void FinishOpen(SafeFd source, SafeFd target, statx st, string path)
        {
            Check(fchown(Fd(target), (uid_t)st.stx_uid, (gid_t)st.stx_gid), "fchown", path);
            Check(fchmod(Fd(target), (mode_t)(st.stx_mode & 0xFFF)), "fchmod", path);
            CopyXattrs(path,
                (buf, size) => Interop.FListXattr(Fd(source), buf, size),
                (attr, buf, size) => Interop.FGetXattr(Fd(source), attr, buf, size),
                (attr, buf, size) => Interop.FSetXattr(Fd(target), attr, buf, size, 0));
            var times = stackalloc timespec[2];
            Times(st, times);
            Check(futimens(Fd(target), times), "futimens", path);
        }

        /// <summary>The same for a symlink or node, named in its parent folders (never followed).</summary>
        private void FinishAt(SafeFd source, SafeFd target, string name, NativeUtf8 n, statx st, string path, bool isSymlink)
        {
            Check(fchownat(Fd(target), n.Ptr, (uid_t)st.stx_uid, (gid_t)st.stx_gid, AT_SYMLINK_NOFOLLOW), "fchownat", path);
            // The name is a node just made by mknodat, not a symlink: fchmodat cannot take AT_SYMLINK_NOFOLLOW on glibc 2.36.
            if (!isSymlink)
                Check(fchmodat(Fd(target), n.Ptr, (mode_t)(st.stx_mode & 0xFFF), 0), "fchmodat", path);
            // The parents' descriptors through /proc (walked safely); the l* calls do not follow the last name.
            var from = $"/proc/self/fd/{Fd(source)}/{name}";
            var to = $"/proc/self/fd/{Fd(target)}/{name}";
            CopyXattrs(path,
                (buf, size) => Interop.LListXattr(from, buf, size),
                (attr, buf, size) => Interop.LGetXattr(from, attr, buf, size),
                (attr, buf, size) => Interop.LSetXattr(to, attr, buf, size, 0),
                isSymlink);
            var times = stackalloc timespec[2];
            Times(st, times);
            Check(utimensat(Fd(target), n.Ptr, times, AT_SYMLINK_NOFOLLOW), "utimensat", path);
        }

        private delegate nint ListXattr(byte* buffer, nuint size);
        private delegate nint GetXattr(string name, byte* buffer, nuint size);
        private delegate int SetXattr(string name, byte* buffer, nuint size);

        private static void CopyXattrs(string path, ListXattr list, GetXattr get, SetXattr set, bool isSymlink = false)
        {
            var size = list(null, 0);
            if (size < 0)
            {
                var errno = Interop.LastErrno;
                if (errno == ENOTSUP)
                    return;
                throw Interop.Error(errno, "listxattr", path);
            }
            if (size == 0)
                return;
            var names = new byte[size];
            fixed (byte* p = names)
            {
                size = list(p, (nuint)names.Length);
                if (size < 0)
                    throw Interop.Error("listxattr", path);
            }
            foreach (var attr in Encoding.UTF8.GetString(names, 0, (int)size).Split('\0', StringSplitOptions.RemoveEmptyEntries))
            {
                // overlayfs's own: they could redirect lookups if they reached a layer (the unpacker skips them too).
                if (attr.StartsWith("trusted.overlay.", StringComparison.Ordinal))
                    continue;
                var length = get(attr, null, 0);
                if (length < 0)
                {
                    // ENODATA: removed meanwhile.
                    if (Interop.LastErrno == ENODATA)
                        continue;
                    throw Interop.Error("getxattr " + attr, path);
                }
                var value = new byte[length];
                fixed (byte* v = value)
                {
                    length = get(attr, v, (nuint)value.Length);
                    if (length < 0)
                        throw Interop.Error("getxattr " + attr, path);
                    if (set(attr, v, (nuint)length) != 0)
                    {
                        var errno = Interop.LastErrno;
                        // The volume's filesystem cannot hold this kind of attribute, or (user.* on a
                        // symlink) the kernel never allows it there: the file is still the image's.
                        if (errno == ENOTSUP || (isSymlink && errno == EPERM))
                            continue;
                        throw Interop.Error(errno, "setxattr " + attr, path);
                    }
                }
            }
        }

        private static void Times(statx st, timespec* times)
        {
            times[0] = new timespec { tv_sec = (time_t)st.stx_atime.tv_sec, tv_nsec = (long_t)st.stx_atime.tv_nsec };
            times[1] = new timespec { tv_sec = (time_t)st.stx_mtime.tv_sec, tv_nsec = (long_t)st.stx_mtime.tv_nsec };
        }

        private static void CopyData(SafeFd from, SafeFd to, string path)
        {
            var buffer = new byte[128 * 1024];
            while (true)
            {
                var read = Interop.Read(from, buffer);
                if (read < 0 && Interop.LastErrno == EINTR)
                    continue;
                Interop.CheckIo(read, "read", path);
                if (read == 0)
                    return;
                var done = 0L;
                while (done < read)
                {
                    var written = Interop.Write(to, buffer.AsSpan((int)done, (int)(read - done)));
                    if (written < 0 && Interop.LastErrno == EINTR)
                        continue;
                    Interop.CheckIo(written, "write", path);
                    done += written;
                }
            }
        }

        private static string ReadLink(SafeFd dir, NativeUtf8 name, string path)
        {
            var buffer = new byte[4096];
            fixed (byte* b = buffer)
            {
                long n = readlinkat(Fd(dir), name.Ptr, b, (size_t)(ulong)buffer.Length);
                if (n < 0)
                    throw Interop.Error("readlinkat", path);
                return Encoding.UTF8.GetString(buffer, 0, (int)n);
            }
        }

        /// <summary>The names in a folder, read through a descriptor of its own ("." reopened: closedir closes it).</summary>
        private static List<string> Names(SafeFd dir, string path)
        {
            int fd;
            fixed (byte* dot = "."u8)
            {
                fd = openat(Fd(dir), dot, O_RDONLY | O_DIRECTORY | O_CLOEXEC, (mode_t)0);
            }
            if (fd < 0)
                throw Interop.Error("openat", path);
            var stream = Interop.FdOpenDir(fd);
            if (stream == 0)
            {
                var errno = Interop.LastErrno;
                close(fd);
                throw Interop.Error(errno, "fdopendir", path);
            }
            var names = new List<string>();
            try
            {
                while (true)
                {
                    Marshal.SetLastPInvokeError(0);
                    var entry = Interop.ReadDir(stream);
                    if (entry is null)
                    {
                        var errno = Interop.LastErrno;
                        if (errno != 0)
                            throw Interop.Error(errno, "readdir", path);
                        return names;
                    }
                    var name = Marshal.PtrToStringUTF8((nint)(entry + Interop.DirentNameOffset))!;
                    if (name is not ("." or ".."))
                        names.Add(name);
                }
            }
            finally
            {
                Interop.CloseDir(stream);
            }
        }

        private static SafeFd OpenAt(SafeFd dir, NativeUtf8 name, int flags, uint mode, string path)
        {
            int fd = openat(Fd(dir), name.Ptr, flags, (mode_t)mode);
            if (fd < 0)
                throw Interop.Error("openat", path);
            return SafeFd.FromResult(fd);
        }

        private static void Check(int result, string syscall, string path)
        {
            if (result != 0)
                throw Interop.Error(syscall, path);
        }

        private static int Fd(SafeFd fd) => (int)fd.DangerousGetHandle();

        public void Dispose()
        {
            foreach (var fd in _links.Values)
                fd.Dispose();
        }

        public override string ToString() => destination;
    }
}
