using System.Runtime.InteropServices;

namespace Crid.Linux;

internal static unsafe partial class Interop
{
    internal const int O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0x40, O_EXCL = 0x80, O_CLOEXEC = 0x80000;
    internal const int AT_FDCWD = -100;
    internal const uint STATX_BASIC_STATS = 0x7ff;

    // statx rather than stat: its layout is the same on every architecture, so no per-arch struct.
    [StructLayout(LayoutKind.Sequential)]
    internal struct Statx
    {
        public uint Mask;
        public uint BlkSize;
        public ulong Attributes;
        public uint NLink;
        public uint Uid;
        public uint Gid;
        public ushort Mode;
        public ushort Pad0;
        public ulong Ino;
        public ulong Size;
        public ulong Blocks;
        public ulong AttributesMask;
        public fixed byte Times[64];
        public uint RdevMajor;
        public uint RdevMinor;
        public uint DevMajor;
        public uint DevMinor;
        public fixed byte Spare[112];
    }

    [LibraryImport(Libc, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenRaw(string path, int flags, uint mode);

    /// <summary>open(2); on failure the handle is invalid and errno is still the last P/Invoke error.</summary>
    internal static SafeFd Open(string path, int flags, uint mode) => SafeFd.FromResult(OpenRaw(path, flags, mode));

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    [LibraryImport(Libc, EntryPoint = "write", SetLastError = true)]
    internal static partial nint Write(SafeFd fd, byte* buf, nint count);

    [LibraryImport(Libc, EntryPoint = "mkdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Mkdir(string path, uint mode);

    [LibraryImport(Libc, EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Unlink(string path);

    [LibraryImport(Libc, EntryPoint = "fchown", SetLastError = true)]
    internal static partial int FChown(SafeFd fd, uint uid, uint gid);

    [LibraryImport(Libc, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int StatxPath(int dirfd, string path, int flags, uint mask, Statx* buf);

    // struct statfs starts with f_type (a long) on every 64-bit Linux ABI; 128 bytes covers the rest.
    [LibraryImport(Libc, EntryPoint = "statfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int StatFs(string path, byte* buf);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int Ioctl(SafeFd fd, nuint request, void* arg);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int IoctlNoArg(SafeFd fd, nuint request);

    internal const int O_DIRECTORY = 0x10000;

    [LibraryImport(Libc, EntryPoint = "fsync", SetLastError = true)]
    internal static partial int Fsync(SafeFd fd);

    [LibraryImport(Libc, EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int LChown(string path, uint uid, uint gid);

    internal const int AT_SYMLINK_NOFOLLOW = 0x100;
    internal const ushort S_IFMT = 0xF000, S_IFSOCK = 0xC000;

    // struct statvfs of 64-bit glibc: eleven unsigned longs, then six ints of padding.
    [StructLayout(LayoutKind.Sequential)]
    internal struct StatVfs
    {
        public ulong BSize, FrSize, Blocks, BFree, BAvail, Files, FFree, FAvail, FsId, Flag, NameMax;
        public fixed int Spare[6];
    }

    [LibraryImport(Libc, EntryPoint = "statvfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int StatVfsPath(string path, StatVfs* buf);
}
