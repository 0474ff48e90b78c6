using System.Runtime.InteropServices;
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
    private readonly SafeFileHandle _master;

    private Pty(SafeFileHandle master, string slavePath)
    {
        _master = master;
        SlavePath = slavePath;
    }

    public string SlavePath { get; }

    public static unsafe Pty Open(ushort rows, ushort columns)
    {
        int m;
        fixed (byte* ptmx = "/dev/ptmx\0"u8)
        {
            m = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC, 0);
        }

        if (m < 0)
        {
            throw Errors.LastIo("open", "/dev/ptmx");
        }

        var master = new SafeFileHandle(m, ownsHandle: true);
        try
        {
            int unlock = 0, number;
            if (ioctl(m, TIOCSPTLCK, &unlock) != 0 || ioctl(m, TIOCGPTN, &number) != 0)
            {
                throw Errors.LastIo("ioctl TIOCSPTLCK/TIOCGPTN", "/dev/ptmx");
            }

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
        bool added = false;
        _master.DangerousAddRef(ref added);
        try
        {
            if (ioctl((int)_master.DangerousGetHandle(), TIOCSWINSZ, &ws) != 0)
            {
                throw Errors.LastIo("ioctl TIOCSWINSZ", SlavePath);
            }
        }
        finally
        {
            _master.DangerousRelease();
        }
    }

    /// <summary>Two streams over two copies of the master: what the terminal shows, and its keyboard.</summary>
    public (FdStream Output, FdStream Input) OpenStreams()
    {
        return (new FdStream(Duplicate(), canRead: true), new FdStream(Duplicate(), canRead: false));
    }

    public void Dispose() => _master.Dispose();

    private SafeFileHandle Duplicate()
    {
        int fd = fcntl((int)_master.DangerousGetHandle(), F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
        {
            throw Errors.LastIo("fcntl F_DUPFD_CLOEXEC", SlavePath);
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    // cfmakeraw(3), on a slave descriptor held only for the call: a slave left open here would keep
    // the master from ever reading EIO (end of session) once the child is gone.
    private unsafe void MakeSlaveRaw()
    {
        var path = System.Text.Encoding.UTF8.GetBytes(SlavePath + "\0");
        int s;
        fixed (byte* p = path)
        {
            s = open(p, O_RDWR | O_NOCTTY | O_CLOEXEC, 0);
        }

        if (s < 0)
        {
            throw Errors.LastIo("open", SlavePath);
        }

        try
        {
            termios t;
            if (tcgetattr(s, &t) != 0)
            {
                throw Errors.LastIo("tcgetattr", SlavePath);
            }

            t.c_iflag &= ~(uint)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
            t.c_oflag &= ~(uint)OPOST;
            t.c_lflag &= ~(uint)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
            t.c_cflag &= ~(uint)(CSIZE | PARENB);
            t.c_cflag |= (uint)CS8;
            if (tcsetattr(s, (int)TCSANOW, &t) != 0)
            {
                throw Errors.LastIo("tcsetattr", SlavePath);
            }
        }
        finally
        {
            close(s);
        }
    }
}
