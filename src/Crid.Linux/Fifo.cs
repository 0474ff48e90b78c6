using System.Runtime.InteropServices;
using System.Text;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>Writes to a fifo someone else reads (conmon's ctl fifo) without ever waiting for a reader.</summary>
public static class Fifo
{
    /// <summary>
    /// Writes <paramref name="message"/> in one write(2) (atomic below PIPE_BUF). false when nobody
    /// reads the fifo (fifo(7): a non-blocking open for writing fails with ENXIO) or it is missing.
    /// </summary>
    public static unsafe bool TryWrite(string path, string message)
    {
        var bytes = Encoding.UTF8.GetBytes(message);
        var cpath = Encoding.UTF8.GetBytes(path + "\0");
        int fd;
        fixed (byte* p = cpath)
        {
            fd = open(p, O_WRONLY | O_NONBLOCK | O_CLOEXEC, 0);
        }

        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno is Interop.ENOENT or 6 /* ENXIO */)
            {
                return false;
            }

            throw new IOException($"open {path}: {Interop.ErrnoName(errno)}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }

        try
        {
            fixed (byte* b = bytes)
            {
                long n = write(fd, b, bytes.Length);
                if (n != bytes.Length)
                {
                    throw Errors.LastIo("write", path);
                }
            }

            return true;
        }
        finally
        {
            close(fd);
        }
    }
}
