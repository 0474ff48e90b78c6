using System.Runtime.InteropServices;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

// open_tree(2) and mount_setattr(2) through Tmds.LibC's syscall(): it has neither wrapper nor
// constants for the new mount API, and glibc 2.36 (bookworm) has no open_tree either.
internal static unsafe partial class Interop
{
    // Syscalls added since Linux 5.1 have one number on every architecture.
    private const int SYS_open_tree = 428, SYS_mount_setattr = 442;

    // <linux/mount.h>
    internal const uint OPEN_TREE_CLONE = 1, OPEN_TREE_CLOEXEC = 0x80000 /* O_CLOEXEC */;
    internal const ulong MOUNT_ATTR_IDMAP = 0x00100000;

    /// <summary>struct mount_attr (MOUNT_ATTR_SIZE_VER0, 32 bytes): the layout the kernel reads.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct MountAttr
    {
        public ulong AttrSet;
        public ulong AttrClr;
        public ulong Propagation;
        public ulong UsernsFd;
    }

    /// <summary>open_tree(AT_FDCWD, path, flags): with OPEN_TREE_CLONE a detached copy of the mount at <paramref name="path"/>.</summary>
    internal static SafeFd OpenTree(string path, uint flags)
    {
        fixed (byte* p = Utf8Z(path))
        {
            return SafeFd.FromResult((int)syscall(SYS_open_tree, AT_FDCWD, p, flags));
        }
    }

    /// <summary>mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set = MOUNT_ATTR_IDMAP, userns_fd}): the detached mount shows ids through <paramref name="userns"/>'s mapping.</summary>
    internal static int MountSetIdmap(SafeHandle tree, SafeHandle userns)
    {
        using var t = tree.Borrow();
        using var u = userns.Borrow();
        var attr = new MountAttr { AttrSet = MOUNT_ATTR_IDMAP, UsernsFd = (ulong)u.Fd };
        byte empty = 0;
        return (int)syscall(SYS_mount_setattr, t.Fd, &empty, AT_EMPTY_PATH, &attr, sizeof(MountAttr));
    }
}
