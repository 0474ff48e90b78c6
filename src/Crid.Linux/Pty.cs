using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// A pseudo-terminal pair from /dev/ptmx (pty(7)): the daemon keeps the master, a child opens
/// <see cref="SlavePath"/> as its controlling terminal. The slave starts raw (no echo, no line
/// editing, no output translation): it only carries another terminal's bytes.
/// </summary>
public sealed class Pty : IDisposable
{
    private readonly SafeFd _master;

    private Pty(SafeFd master, string slavePath)
    {
        _master = master;
        SlavePath = slavePath;
    }

    public string SlavePath { get; }

    public static unsafe Pty Open(ushort rows, ushort columns)
    {
        var master = Interop.OpenChecked("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        try
        {
            int unlock = 0, number;
            Interop.CheckIo(Interop.Ioctl(master, TIOCSPTLCK, &unlock), "ioctl TIOCSPTLCK", "/dev/ptmx");
            Interop.CheckIo(Interop.Ioctl(master, TIOCGPTN, &number), "ioctl TIOCGPTN", "/dev/ptmx");
            var pty = new Pty(master, $"/dev/pts/{number}");
            pty.MakeSlaveRaw();
            pty.Resize(rows, columns);
            return pty;
        }
        catch
        {
            master.Dispose();
            throw;
        }
    }

    /// <summary>TIOCSWINSZ on the master: the slave's session gets SIGWINCH, as from a real terminal.</summary>
    public unsafe void Resize(ushort rows, ushort columns)
    {
        if (rows == 0 || columns == 0)
        {
            return;
        }

        winsize ws = default;
        ws.ws_row = rows;
        ws.ws_col = columns;
        Interop.CheckIo(Interop.Ioctl(_master, TIOCSWINSZ, &ws), "ioctl TIOCSWINSZ", SlavePath);
    }

    /// <summary>Two streams over two copies of the master: what the terminal shows, and its keyboard.</summary>
    public (FdStream Output, FdStream Input) OpenStreams()
    {
        return (new FdStream(Duplicate(), canRead: true), new FdStream(Duplicate(), canRead: false));
    }

    public void Dispose() => _master.Dispose();

    private SafeFileHandle Duplicate()
    {
        using var master = _master.Borrow();
        return new SafeFileHandle(Interop.CheckIo(fcntl(master.Fd, F_DUPFD_CLOEXEC, 3), "fcntl F_DUPFD_CLOEXEC", SlavePath), ownsHandle: true);
    }

    // cfmakeraw(3), on a slave descriptor held only for the call: a slave left open here would keep
    // the master from ever reading EIO (end of session) once the child is gone.
    private unsafe void MakeSlaveRaw()
    {
        using var slave = Interop.OpenChecked(SlavePath, O_RDWR | O_NOCTTY | O_CLOEXEC);
        using var s = slave.Borrow();
        termios t;
        Interop.CheckIo(tcgetattr(s.Fd, &t), "tcgetattr", SlavePath);
        t.c_iflag &= ~(uint)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
        t.c_oflag &= ~(uint)OPOST;
        t.c_lflag &= ~(uint)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
        t.c_cflag &= ~(uint)(CSIZE | PARENB);
        t.c_cflag |= (uint)CS8;
        Interop.CheckIo(tcsetattr(s.Fd, (int)TCSANOW, &t), "tcsetattr", SlavePath);
    }
}
