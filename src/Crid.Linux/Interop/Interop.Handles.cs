using System.Runtime.InteropServices;

namespace Crid.Linux;

internal static partial class Interop
{
    /// <summary>
    /// A descriptor number borrowed from its SafeHandle for one call: the reference keeps a
    /// concurrent Dispose from closing it (and the number from being reused) meanwhile. Dispose
    /// keeps errno, so a failure can still be read after the lease ends.
    /// </summary>
    internal readonly ref struct FdLease
    {
        private readonly SafeHandle? _handle;

        public FdLease(SafeHandle handle)
        {
            bool added = false;
            handle.DangerousAddRef(ref added);
            _handle = handle;
            Fd = (int)handle.DangerousGetHandle();
        }

        public int Fd { get; }

        public void Dispose()
        {
            if (_handle is not null)
            {
                int errno = Marshal.GetLastPInvokeError();
                _handle.DangerousRelease();
                Marshal.SetLastPInvokeError(errno);
            }
        }
    }

    internal static FdLease Borrow(this SafeHandle handle) => new(handle);
}
