using System.Runtime.InteropServices;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

// pidfd_open(2) and pidfd_send_signal(2) through Tmds.LibC's syscall(): it has no wrappers for them.
internal static partial class Interop
{
    // Syscalls added since Linux 5.1 have one number on every architecture.
    private const int SYS_pidfd_send_signal = 424, SYS_pidfd_open = 434;

    /// <summary>A descriptor that turns readable once the process has exited; invalid with errno set (ESRCH: gone).</summary>
    internal static SafeFd PidfdOpen(int pid) => SafeFd.FromResult((int)syscall(SYS_pidfd_open, pid, 0));

    /// <summary>Signals the process the pidfd names, never a process that reused its pid.</summary>
    internal static unsafe int PidfdSendSignal(SafeHandle pidfd, int signal)
    {
        using var fd = pidfd.Borrow();
        return (int)syscall(SYS_pidfd_send_signal, fd.Fd, signal, (void*)null, 0);
    }
}
