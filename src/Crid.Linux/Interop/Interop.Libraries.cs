namespace Crid.Linux;

/// <summary>
/// The syscall boundary. Calls and constants come from Tmds.LibC (<c>using static Tmds.Linux.LibC</c>),
/// a raw mirror of the C headers; the files of this class are the typed layer on top (strings as
/// UTF-8, descriptors as SafeHandles, one errno path) and our own LibraryImports for what Tmds.LibC
/// 0.5.0 lacks, each saying so beside it.
/// </summary>
internal static partial class Interop
{
    // glibc's soname; "libc" alone would make the loader try libc.so, which on Debian is a
    // linker script that only exists with libc6-dev.
    internal const string Libc = "libc.so.6";
}
