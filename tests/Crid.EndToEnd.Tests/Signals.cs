using System.Runtime.InteropServices;

namespace Crid.EndToEnd.Tests;

internal static class Signals
{
    public const int SIGKILL = 9, SIGTERM = 15, SIGINT = 2;

    public static void Send(int pid, int signal)
    {
        if (kill(pid, signal) != 0)
            throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
