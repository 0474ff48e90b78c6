using System.Runtime.InteropServices;

namespace Crid.Linux;

// Listing and copying extended attributes (Tmds.LibC 0.5.0 has no xattr calls), for VolumeContent.
internal static unsafe partial class Interop
{
    [LibraryImport(Libc, EntryPoint = "llistxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint LListXattr(string path, byte* list, nuint size);

    [LibraryImport(Libc, EntryPoint = "flistxattr", SetLastError = true)]
    internal static partial nint FListXattr(int fd, byte* list, nuint size);

    [LibraryImport(Libc, EntryPoint = "fgetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint FGetXattr(int fd, string name, byte* value, nuint size);

    [LibraryImport(Libc, EntryPoint = "fsetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int FSetXattr(int fd, string name, byte* value, nuint size, int flags);
}
