using System.Runtime.InteropServices;

namespace Crid.Linux;

/// <summary>File facts and changes that .NET's own file APIs do not offer: file type, ownership.</summary>
public static partial class HostFiles
{
    private const uint S_IFMT = 0xF000, S_IFSOCK = 0xC000;

    /// <summary>True when <paramref name="path"/> is a Unix socket (not following a final symlink).</summary>
    public static bool IsSocket(string path) => lstat(path, out var st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK;

    /// <summary>Changes the owning group of <paramref name="path"/>, keeping its owner.</summary>
    public static void SetGroup(string path, int gid)
    {
        if (lchown(path, uint.MaxValue, (uint)gid) != 0)
            throw new IOException($"lchown {path}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>
    /// fsync(2) of a folder: makes the names created or renamed inside it durable. .NET cannot open a
    /// folder as a file handle, so this goes to libc.
    /// </summary>
    public static void SyncDirectory(string path)
    {
        const int O_RDONLY = 0, O_DIRECTORY = 0x10000, O_CLOEXEC = 0x80000;
        var fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            throw new IOException($"open {path}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        try
        {
            if (fsync(fd) != 0)
                throw new IOException($"fsync {path}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }
        finally
        {
            close(fd);
        }
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc")]
    private static partial int close(int fd);

    // struct stat as laid out by the x86_64 kernel ABI (asm/stat.h).
    [StructLayout(LayoutKind.Sequential)]
    private struct Stat
    {
        public ulong st_dev, st_ino, st_nlink;
        public uint st_mode, st_uid, st_gid;
        private readonly uint pad0;
        public ulong st_rdev;
        public long st_size, st_blksize, st_blocks;
        public long st_atime, st_atime_nsec, st_mtime, st_mtime_nsec, st_ctime, st_ctime_nsec;
        private readonly long reserved0, reserved1, reserved2;
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lstat(string path, out Stat buf);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lchown(string path, uint owner, uint group);
}
