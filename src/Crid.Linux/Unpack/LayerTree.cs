using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux.Unpack;

/// <summary>
/// One layer folder being filled from a tar stream. Every path is relative to the folder and is
/// walked by the kernel with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS):
/// no component may be a symbolic link and nothing may resolve outside the folder, so a hostile
/// layer that plants <c>a -> /etc</c> and then writes <c>a/passwd</c> gets an error, not a write.
/// The last component is never followed either: every call is an *at call on the parent's fd with
/// O_NOFOLLOW or AT_SYMLINK_NOFOLLOW.
/// </summary>
/// <remarks>
/// Callers pass names already split on '/', free of "", "." and ".." (the tar reader's check); the
/// kernel's walk is the second line of defence, not the only one.
/// </remarks>
public sealed unsafe class LayerTree : IDisposable
{
    private const ulong Resolve = 0x08 /* RESOLVE_BENEATH */ | 0x04 /* RESOLVE_NO_SYMLINKS */
        | 0x02 /* RESOLVE_NO_MAGICLINKS */ | 0x01 /* RESOLVE_NO_XDEV */;
    private const int S_IFMT = 0xF000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFIFO = 0x1000;

    private readonly SafeFd _root;
    private readonly string _rootPath;
    // Tar entries come folder by folder: the parent of the last entry is usually the next one's too.
    private string? _cachedParent;
    private SafeFd? _cachedParentFd;

    private LayerTree(SafeFd root, string rootPath)
    {
        _root = root;
        _rootPath = rootPath;
    }

    public string Root => _rootPath;

    /// <summary>Opens an existing, empty-or-partial layer folder.</summary>
    public static LayerTree Open(string root)
    {
        using var path = new NativeUtf8(root);
        var fd = openat(AT_FDCWD, path.Ptr, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW, (mode_t)0);
        if (fd < 0)
            throw Fail("open", root);
        return new LayerTree(SafeFd.FromResult(fd), root);
    }

    /// <summary>mkdir, or keeps an existing folder; anything else at that name is replaced.</summary>
    public void MakeDirectory(string path, uint mode)
    {
        var (parentOrNull, name) = Parent(path, create: true);
        var parent = parentOrNull!;
        using var n = new NativeUtf8(name);
        if (mkdirat(Fd(parent), n.Ptr, (mode_t)(mode & 0xFFF)) == 0)
            return;
        var err = errno;
        if (err != EEXIST)
            throw Fail("mkdirat", path, err);
        if (TypeOf(parent, n, path) == S_IFDIR)
            return;
        RemoveAt(parent, name, path);
        if (mkdirat(Fd(parent), n.Ptr, (mode_t)(mode & 0xFFF)) != 0)
            throw Fail("mkdirat", path);
    }

    /// <summary>Creates a regular file (replacing whatever had that name) and returns it open for writing.</summary>
    public FileStream CreateFile(string path)
    {
        var (parentOrNull, name) = Parent(path, create: true);
        var parent = parentOrNull!;
        using var n = new NativeUtf8(name);
        var fd = openat(Fd(parent), n.Ptr, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)0x180);
        if (fd < 0 && errno == EEXIST)
        {
            RemoveAt(parent, name, path);
            fd = openat(Fd(parent), n.Ptr, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)0x180);
        }
        if (fd < 0)
            throw Fail("openat", path);
        return new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, bufferSize: 0);
    }

    public void Symlink(string path, string target)
    {
        var (parentOrNull, name) = Parent(path, create: true);
        var parent = parentOrNull!;
        using var n = new NativeUtf8(name);
        using var t = new NativeUtf8(target);
        if (symlinkat(t.Ptr, Fd(parent), n.Ptr) == 0)
            return;
        if (errno != EEXIST)
            throw Fail("symlinkat", path);
        RemoveAt(parent, name, path);
        if (symlinkat(t.Ptr, Fd(parent), n.Ptr) != 0)
            throw Fail("symlinkat", path);
    }

    /// <summary>A hard link to <paramref name="target"/>, a path in this same folder (never followed if it is a symlink).</summary>
    public void HardLink(string path, string target)
    {
        using var targetParent = OpenParentOwned(target, out var targetName);
        var (parentOrNull, name) = Parent(path, create: true);
        var parent = parentOrNull!;
        using var n = new NativeUtf8(name);
        using var t = new NativeUtf8(targetName);
        if (linkat(Fd(targetParent), t.Ptr, Fd(parent), n.Ptr, 0) == 0)
            return;
        var err = errno;
        if (err != EEXIST)
            throw Fail("linkat", $"{path} -> {target}", err);
        RemoveAt(parent, name, path);
        if (linkat(Fd(targetParent), t.Ptr, Fd(parent), n.Ptr, 0) != 0)
            throw Fail("linkat", $"{path} -> {target}");
    }

    public enum NodeKind { CharDevice, BlockDevice, Fifo }

    public void MakeNode(string path, NodeKind kind, uint mode, uint major, uint minor)
    {
        var type = kind switch { NodeKind.CharDevice => S_IFCHR, NodeKind.BlockDevice => S_IFBLK, _ => S_IFIFO };
        // makedev(3) for glibc's 64-bit dev_t.
        ulong dev = ((ulong)(major & 0xfffff000) << 32) | ((ulong)(major & 0xfff) << 8)
            | ((ulong)(minor & 0xffffff00) << 12) | (minor & 0xff);
        var (parentOrNull, name) = Parent(path, create: true);
        var parent = parentOrNull!;
        using var n = new NativeUtf8(name);
        if (mknodat(Fd(parent), n.Ptr, (mode_t)((uint)type | (mode & 0xFFF)), (dev_t)dev) == 0)
            return;
        if (errno != EEXIST)
            throw Fail("mknodat", path);
        RemoveAt(parent, name, path);
        if (mknodat(Fd(parent), n.Ptr, (mode_t)((uint)type | (mode & 0xFFF)), (dev_t)dev) != 0)
            throw Fail("mknodat", path);
    }

    /// <summary>
    /// An overlayfs whiteout: a character device 0/0 (Documentation/filesystems/overlayfs.rst,
    /// "whiteouts and opaque directories"), hiding <paramref name="path"/> of the layers below.
    /// </summary>
    public void Whiteout(string path) => MakeNode(path, NodeKind.CharDevice, 0, 0, 0);

    /// <summary>Marks a folder opaque for overlayfs: nothing of the layers below shows through it.</summary>
    public void SetOpaque(string dirPath)
    {
        if (dirPath.Length > 0)
            MakeDirectory(dirPath, 0x1ED);
        SetXattr(dirPath, "trusted.overlay.opaque", "y"u8.ToArray());
    }

    /// <summary>Removes whatever has that name (a folder with everything in it); nothing there is fine.</summary>
    public void Remove(string path)
    {
        var (parent, name) = Parent(path, create: false);
        if (parent is null)
            return;
        RemoveAt(parent, name, path);
    }

    /// <summary>chown, chmod (not for symlinks, which have no mode of their own), in that order: chown clears set-id bits.</summary>
    public void SetOwnerAndMode(string path, uint uid, uint gid, uint mode, bool isSymlink)
    {
        var (parent, name) = ParentOrRoot(path);
        using var n = new NativeUtf8(name);
        var at = name.Length == 0 ? Dot : n.Ptr;
        if (fchownat(Fd(parent), at, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) != 0)
            throw Fail("fchownat", path);
        if (isSymlink)
            return;
        // fchmodat cannot take AT_SYMLINK_NOFOLLOW on glibc 2.36, but the name is not a symlink:
        // it was just created by us as a file, folder or node on a parent walked without symlinks.
        if (fchmodat(Fd(parent), at, (mode_t)(mode & 0xFFF), 0) != 0)
            throw Fail("fchmodat", path);
    }

    public void SetTimes(string path, DateTimeOffset access, DateTimeOffset modified)
    {
        var (parent, name) = ParentOrRoot(path);
        using var n = new NativeUtf8(name);
        var times = stackalloc timespec[2];
        times[0] = ToTimespec(access);
        times[1] = ToTimespec(modified);
        if (utimensat(Fd(parent), name.Length == 0 ? Dot : n.Ptr, times, AT_SYMLINK_NOFOLLOW) != 0)
            throw Fail("utimensat", path);
    }

    /// <summary>lsetxattr on the entry itself (never a symlink's target).</summary>
    public void SetXattr(string path, string attribute, byte[] value)
    {
        var (parent, name) = ParentOrRoot(path);
        // The parent's fd through /proc: the parent was walked safely, the name has no '/', and
        // lsetxattr does not follow a final symlink.
        var procPath = name.Length == 0
            ? $"/proc/self/fd/{Fd(parent)}"
            : $"/proc/self/fd/{Fd(parent)}/{name}";
        fixed (byte* v = value)
        {
            if (Interop.LSetXattr(procPath, attribute, v, (nuint)value.Length, 0) != 0)
                throw Fail($"lsetxattr {attribute}", path);
        }
    }

    /// <summary>The entry's type bits (S_IFMT of st_mode), or 0 when nothing has that name.</summary>
    public int TypeOf(string path)
    {
        var (parent, name) = Parent(path, create: false);
        if (parent is null)
            return 0;
        using var n = new NativeUtf8(name);
        return TypeOf(parent, n, path);
    }

    public static bool IsDirectoryType(int type) => type == S_IFDIR;

    public void Dispose()
    {
        _cachedParentFd?.Dispose();
        _root.Dispose();
    }

    private static readonly byte* Dot = (byte*)NativeMemory.Alloc(2);

    static LayerTree()
    {
        Dot[0] = (byte)'.';
        Dot[1] = 0;
    }

    private int TypeOf(SafeFd parent, NativeUtf8 name, string path)
    {
        stat st;
        if (fstatat(Fd(parent), name.Ptr, &st, AT_SYMLINK_NOFOLLOW) != 0)
        {
            if (errno == ENOENT)
                return 0;
            throw Fail("fstatat", path);
        }
        return (int)(st.st_mode & S_IFMT);
    }

    private void RemoveAt(SafeFd parent, string name, string path)
    {
        using var n = new NativeUtf8(name);
        if (unlinkat(Fd(parent), n.Ptr, 0) == 0)
            return;
        var err = errno;
        if (err == ENOENT)
            return;
        if (err != EISDIR)
            throw Fail("unlinkat", path, err);
        // A folder with content: .NET's recursive delete removes symlinks, never what they point at.
        // The path goes through the parent's fd, which was walked without symlinks.
        Directory.Delete($"/proc/self/fd/{Fd(parent)}/{name}", recursive: true);
        // Cached parents under the removed folder are gone with it.
        if (_cachedParent is not null && (_cachedParent == path || _cachedParent.StartsWith(path + "/", StringComparison.Ordinal)))
            DropCache();
    }

    private (SafeFd Fd, string Name) ParentOrRoot(string path) =>
        path.Length == 0 ? (_root, "") : Parent(path, create: false) is ({ } fd, var name) ? (fd, name)
            : throw Interop.Error(ENOENT, "openat2", path);

    /// <summary>The parent folder's fd (cached; not to be disposed by the caller) and the last name.</summary>
    private (SafeFd? Fd, string Name) Parent(string path, bool create)
    {
        var slash = path.LastIndexOf('/');
        if (slash < 0)
            return (_root, path);
        var dir = path[..slash];
        var name = path[(slash + 1)..];
        if (_cachedParent == dir && _cachedParentFd is not null)
            return (_cachedParentFd, name);
        var fd = OpenBeneath(dir, out var errno);
        if (fd is null && errno == ENOENT)
        {
            if (!create)
                return (null, name);
            CreateParents(dir);
            fd = OpenBeneath(dir, out errno);
        }
        if (fd is null)
            throw FailWalk(dir, errno);
        DropCache();
        _cachedParent = dir;
        _cachedParentFd = fd;
        return (fd, name);
    }

    private SafeFd OpenParentOwned(string path, out string name)
    {
        var slash = path.LastIndexOf('/');
        name = slash < 0 ? path : path[(slash + 1)..];
        if (slash < 0)
        {
            var dup = OpenBeneath(".", out var e);
            return dup ?? throw FailWalk(".", e);
        }
        var fd = OpenBeneath(path[..slash], out var errno);
        return fd ?? throw FailWalk(path[..slash], errno);
    }

    private void CreateParents(string dir)
    {
        // Folders a layer does not list are created 0755 root:root, as containerd and tar do.
        var parts = dir.Split('/');
        for (var i = 1; i <= parts.Length; i++)
        {
            var prefix = string.Join('/', parts, 0, i);
            var parentFd = i == 1 ? null : OpenBeneath(string.Join('/', parts, 0, i - 1), out _);
            try
            {
                using var n = new NativeUtf8(parts[i - 1]);
                if (mkdirat(Fd(parentFd ?? _root), n.Ptr, (mode_t)(0x1ED)) != 0)
                {
                    var err = errno;
                    if (err != EEXIST)
                        throw Fail("mkdirat", prefix, err);
                }
            }
            finally
            {
                parentFd?.Dispose();
            }
        }
    }

    private SafeFd? OpenBeneath(string dir, out int error)
    {
        using var p = new NativeUtf8(dir);
        var how = new open_how { flags = (ulong)(O_PATH | O_DIRECTORY | O_CLOEXEC), resolve = Resolve };
        var fd = openat2(Fd(_root), p.Ptr, &how, (size_t)(ulong)sizeof(open_how));
        if (fd >= 0)
        {
            error = 0;
            return SafeFd.FromResult(fd);
        }
        error = errno;
        return null;
    }

    private void DropCache()
    {
        _cachedParentFd?.Dispose();
        _cachedParentFd = null;
        _cachedParent = null;
    }

    private static int Fd(SafeFd? fd) => (int)(fd ?? throw new InvalidOperationException("no folder")).DangerousGetHandle();

    private static timespec ToTimespec(DateTimeOffset t)
    {
        var ticks = t.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        var sec = Math.DivRem(ticks, TimeSpan.TicksPerSecond, out var rem);
        if (rem < 0)
        {
            sec--;
            rem += TimeSpan.TicksPerSecond;
        }
        return new timespec { tv_sec = (time_t)sec, tv_nsec = (long_t)(rem * 100) };
    }

    private static SyscallException FailWalk(string dir, int errno) =>
        errno == ELOOP || errno == EXDEV || errno == ENOTDIR
            ? new UnsafePathException($"{dir}: leads through a symbolic link or out of the layer ({Interop.ErrnoName(errno)}); refused", errno, dir)
            : Fail("openat2", dir, errno);

    private static SyscallException Fail(string syscall, string path) => Interop.Error(syscall, path);

    private static SyscallException Fail(string syscall, string path, int errno) => Interop.Error(errno, syscall, path);
}
