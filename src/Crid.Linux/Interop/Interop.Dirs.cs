using System.Runtime.InteropServices;

namespace Crid.Linux;

// Reading a folder through a descriptor, which Tmds.LibC 0.5 does not mirror (it has openat and
// statx, not the DIR* functions). Walking by descriptor (openat relative to the parent, never a
// path) is what keeps a walk of a container's files from following a link out of them.
internal static unsafe partial class Interop
{
    internal const byte DT_DIR = 4;

    // struct dirent of glibc on 64-bit Linux: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
    internal const int DirentTypeOffset = 18, DirentNameOffset = 19;

    /// <summary>fdopendir(3): the DIR* owns <paramref name="fd"/> from here on (closedir closes it).</summary>
    [LibraryImport(Libc, EntryPoint = "fdopendir", SetLastError = true)]
    internal static partial nint FdOpenDir(int fd);

    /// <summary>readdir(3): the next entry, or 0 at the end (errno unchanged) or on error (errno set).</summary>
    [LibraryImport(Libc, EntryPoint = "readdir", SetLastError = true)]
    internal static partial byte* ReadDir(nint dir);

    [LibraryImport(Libc, EntryPoint = "closedir", SetLastError = true)]
    internal static partial int CloseDir(nint dir);

    [LibraryImport(Libc, EntryPoint = "dirfd")]
    internal static partial int DirFd(nint dir);
}
