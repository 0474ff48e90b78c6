using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Crid.Streaming.Tests.Host;

/// <summary>A pseudo-terminal pair for the test's host-process exec: the master end and the slave's path.</summary>
internal sealed partial class Pty : IDisposable
{
    private const int O_RDWR = 2, O_NOCTTY = 0x100, O_CLOEXEC = 0x80000;
    private const nuint TIOCSWINSZ = 0x5414;

    private Pty(SafeFileHandle master, string slavePath)
    {
        Master = master;
        SlavePath = slavePath;
    }

    public SafeFileHandle Master { get; }

    public string SlavePath { get; }

    public static Pty Open()
    {
        int fd = PosixOpenpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
            throw new IOException($"posix_openpt: errno {Marshal.GetLastPInvokeError()}");
        var master = new SafeFileHandle(fd, ownsHandle: true);
        if (Grantpt(fd) != 0 || Unlockpt(fd) != 0)
        {
            master.Dispose();
            throw new IOException($"grantpt/unlockpt: errno {Marshal.GetLastPInvokeError()}");
        }
        var name = new byte[128];
        if (PtsnameR(fd, name, name.Length) != 0)
        {
            master.Dispose();
            throw new IOException("ptsname_r failed");
        }
        return new Pty(master, System.Text.Encoding.ASCII.GetString(name, 0, Array.IndexOf(name, (byte)0)));
    }

    /// <summary>TIOCSWINSZ on the master: the kernel sends SIGWINCH to the terminal's foreground group.</summary>
    public unsafe void Resize(ushort columns, ushort rows)
    {
        ushort* size = stackalloc ushort[4];
        size[0] = rows;
        size[1] = columns;
        size[2] = 0;
        size[3] = 0;
        if (Ioctl((int)Master.DangerousGetHandle(), TIOCSWINSZ, size) != 0)
            throw new IOException($"TIOCSWINSZ: errno {Marshal.GetLastPInvokeError()}");
    }

    public void Dispose() => Master.Dispose();

    [LibraryImport("libc.so.6", EntryPoint = "posix_openpt", SetLastError = true)]
    private static partial int PosixOpenpt(int flags);

    [LibraryImport("libc.so.6", EntryPoint = "grantpt", SetLastError = true)]
    private static partial int Grantpt(int fd);

    [LibraryImport("libc.so.6", EntryPoint = "unlockpt", SetLastError = true)]
    private static partial int Unlockpt(int fd);

    [LibraryImport("libc.so.6", EntryPoint = "ptsname_r", SetLastError = true)]
    private static partial int PtsnameR(int fd, [Out] byte[] buffer, nint length);

    [LibraryImport("libc.so.6", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int Ioctl(int fd, nuint request, void* argument);
}
