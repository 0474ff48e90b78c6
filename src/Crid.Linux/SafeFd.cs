using System.Runtime.InteropServices;

namespace Crid.Linux;

/// <summary>A file descriptor owned by us. Invalid is -1 only: fd 0 is a real descriptor.</summary>
internal sealed class SafeFd : SafeHandle
{
    public SafeFd() : base(-1, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == -1;

    /// <summary>
    /// Wraps the int a libc call returned. LibraryImport cannot return a SafeHandle from an int
    /// function: it reads the whole 64-bit register, and a 32-bit -1 becomes 0xFFFFFFFF, "valid".
    /// </summary>
    internal static SafeFd FromResult(int fd)
    {
        var safe = new SafeFd();
        if (fd >= 0)
        {
            Marshal.InitHandle(safe, fd);
        }

        return safe;
    }

    protected override bool ReleaseHandle() => Interop.Close((int)handle) == 0;
}
