using static Tmds.Linux.LibC;

namespace Crid.Linux.Unpack;

/// <summary>Which file a path names right now: its inode, for telling a file replaced by rename(2) apart.</summary>
public static class FileIdentity
{
    /// <summary>The inode of <paramref name="path"/> (not following a final symlink), or 0 when it does not exist.</summary>
    public static ulong Inode(string path) => Interop.Statx(path, AT_SYMLINK_NOFOLLOW, STATX_INO, out var st) == 0 ? st.stx_ino : 0;
}
