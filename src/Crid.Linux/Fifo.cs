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
    public static bool TryWrite(string path, string message)
    {
        using var fd = Interop.Open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd.IsInvalid)
        {
            var error = Interop.Error("open", path);
            return error.Errno == ENOENT || error.Errno == ENXIO ? false : throw error;
        }

        var bytes = Encoding.UTF8.GetBytes(message);
        long n = Interop.Write(fd, bytes);
        if (n < 0)
        {
            throw Interop.Error("write", path);
        }

        return n == bytes.Length ? true : throw Interop.Error(EIO, "write (short)", path);
    }
}
