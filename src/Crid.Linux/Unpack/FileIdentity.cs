using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux.Unpack;

/// <summary>Which file a path names right now: its inode, for telling a file replaced by rename(2) apart.</summary>
public static unsafe class FileIdentity
{
    /// <summary>The inode of <paramref name="path"/> (not following a final symlink), or 0 when it does not exist.</summary>
    public static ulong Inode(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        stat st;
        fixed (byte* p = bytes)
        {
            if (fstatat(AT_FDCWD, p, &st, AT_SYMLINK_NOFOLLOW) != 0)
                return 0;
        }
        return (ulong)st.st_ino;
    }
}
