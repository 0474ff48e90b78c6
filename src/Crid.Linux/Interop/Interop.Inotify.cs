using System.Runtime.InteropServices;

namespace Crid.Linux;

// Tmds.LibC 0.5.0 has no inotify calls: these two are ours.
internal static partial class Interop
{
    [LibraryImport(Libc, EntryPoint = "inotify_init1", SetLastError = true)]
    internal static partial int InotifyInit1(int flags);

    [LibraryImport(Libc, EntryPoint = "inotify_add_watch", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int InotifyAddWatch(SafeHandle fd, string path, uint mask);
}
