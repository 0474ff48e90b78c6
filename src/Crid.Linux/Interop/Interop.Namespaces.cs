using System.Runtime.InteropServices;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

internal static partial class Interop
{
    /// <summary>setns(2) into the namespace an nsfs descriptor names.</summary>
    internal static int Setns(SafeHandle fd, int nstype)
    {
        using var f = fd.Borrow();
        return setns(f.Fd, nstype);
    }
}
