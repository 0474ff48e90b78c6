using System.Runtime.InteropServices;

namespace Crid.Linux;

// Tmds.LibC 0.5.0 has no wait family: waitpid is ours.
internal static unsafe partial class Interop
{
    internal const int WNOHANG = 1;

    [LibraryImport(Libc, EntryPoint = "waitpid", SetLastError = true)]
    internal static partial int Waitpid(int pid, int* status, int options);

    /// <summary>
    /// Reaps <paramref name="pid"/> (waitpid, EINTR retried). Returns the pid, 0 with WNOHANG while it
    /// runs, -1 with errno set (ECHILD: not our child, or reaped already).
    /// </summary>
    internal static int Reap(int pid, int options, out int status)
    {
        int s, rc;
        do
        {
            rc = Waitpid(pid, &s, options);
        }
        while (rc < 0 && LastErrno == Tmds.Linux.LibC.EINTR);

        status = rc > 0 ? s : 0;
        return rc;
    }
}
