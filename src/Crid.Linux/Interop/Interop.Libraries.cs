namespace Crid.Linux;

internal static partial class Interop
{
    // glibc's soname; "libc" alone would make the loader try libc.so, which on Debian is a
    // linker script that only exists with libc6-dev.
    internal const string Libc = "libc.so.6";
}
