using System.Runtime.InteropServices;

namespace Crid.Linux;

// Tmds.LibC 0.5.0 has statvfs but not statfs, and only statfs tells the filesystem type (f_type).
internal static unsafe partial class Interop
{
    // struct statfs starts with f_type (a long) on every 64-bit Linux ABI; 120 bytes hold the rest.
    private const int StatFsSize = 128;

    [LibraryImport(Libc, EntryPoint = "statfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatFsRaw(string path, byte* buf);

    /// <summary>statfs(2)'s f_type of the filesystem holding <paramref name="path"/>.</summary>
    internal static int StatFsType(string path, out long type)
    {
        byte* buf = stackalloc byte[StatFsSize];
        int rc = StatFsRaw(path, buf);
        type = rc == 0 ? *(long*)buf : 0;
        return rc;
    }
}
