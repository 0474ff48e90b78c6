using static Tmds.Linux.LibC;

namespace Crid.Linux;

internal static unsafe partial class Interop
{
    /// <summary>mount(2); <paramref name="data"/> is the filesystem's option string (tmpfs "size=...").</summary>
    internal static int Mount(string source, string target, string? fstype, ulong flags, string? data)
    {
        fixed (byte* s = Utf8Z(source), t = Utf8Z(target), f = Utf8Z(fstype), d = Utf8Z(data))
        {
            return mount(s, t, f, (Tmds.Linux.ulong_t)flags, d);
        }
    }

    internal static int Umount2(string target, int flags)
    {
        fixed (byte* t = Utf8Z(target))
        {
            return umount2(t, flags);
        }
    }
}
