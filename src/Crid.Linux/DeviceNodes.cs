using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>A file as stat(2) sees it: what a device node needs in an OCI spec (type, numbers, mode, owner).</summary>
/// <param name="Type">'c' character device, 'b' block device, 'd' folder, 'l' symlink, '-' anything else.</param>
public readonly record struct NodeInfo(char Type, uint Major, uint Minor, uint Permissions, uint Uid, uint Gid);

/// <summary>Device node facts, which .NET's file APIs do not give (st_rdev).</summary>
public static class DeviceNodes
{
    /// <summary>statx(2) of <paramref name="path"/>; null when it does not exist.</summary>
    /// <param name="path">The node.</param>
    /// <param name="followLinks">false looks at a symlink itself (AT_SYMLINK_NOFOLLOW).</param>
    /// <exception cref="SyscallException">statx failed for another reason (EACCES, ELOOP...).</exception>
    public static NodeInfo? Stat(string path, bool followLinks)
    {
        if (Interop.Statx(path, followLinks ? 0 : AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID, out var st) != 0)
        {
            var error = Interop.Error("statx", path);
            return error.Errno == ENOENT || error.Errno == ENOTDIR ? null : throw error;
        }

        var type = (st.stx_mode & 0xF000) switch
        {
            0x2000 => 'c',
            0x6000 => 'b',
            0x4000 => 'd',
            0xA000 => 'l',
            _ => '-',
        };
        return new NodeInfo(type, st.stx_rdev_major, st.stx_rdev_minor, (uint)st.stx_mode & 0xFFF, st.stx_uid, st.stx_gid);
    }
}
