using System.Runtime.InteropServices;

namespace Crid.Linux;

/// <summary>A file descriptor owned by us. Invalid is -1 only: fd 0 is a real descriptor.</summary>
internal sealed class SafeFd : SafeHandle
{
    public SafeFd() : base(-1, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == -1;

    /// <summary>Wraps the int a libc call returned: -1 (failure) gives an invalid handle, errno untouched.</summary>
    internal static SafeFd FromResult(int fd)
    {
        var safe = new SafeFd();
        if (fd >= 0)
        {
            Marshal.InitHandle(safe, fd);
        }

        return safe;
    }

    /// <summary>The descriptor a call returned, or the exception for its errno (see <see cref="Interop.CheckIo(int, string, string?, string?, string?)"/>).</summary>
    internal static SafeFd Check(int fd, string syscall, string? path = null, string? step = null, string? type = null)
        => FromResult(Interop.CheckIo(fd, syscall, path, step, type));

    // close(2) keeps errno: a handle disposed in a failure branch must not hide the failure's errno.
    protected override bool ReleaseHandle()
    {
        int errno = Marshal.GetLastPInvokeError();
        bool closed = Tmds.Linux.LibC.close((int)handle) == 0;
        Marshal.SetLastPInvokeError(errno);
        return closed;
    }
}
