using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux.Unpack;

/// <summary>Which file a path names right now: the (device, inode) pair, for telling a file replaced by rename(2) apart.</summary>
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

    /// <summary>syncfs(2) of the filesystem holding <paramref name="path"/>: everything written there reaches the disk.</summary>
    public static void SyncFileSystem(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
        {
            var fd = openat(AT_FDCWD, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC, (mode_t)0);
            if (fd < 0)
                throw new LayerTreeException($"open {path}: {Interop.ErrnoName(errno)}", errno);
            try
            {
                if (syncfs(fd) != 0)
                    throw new LayerTreeException($"syncfs {path}: {Interop.ErrnoName(errno)}", errno);
            }
            finally
            {
                close(fd);
            }
        }
    }
}
