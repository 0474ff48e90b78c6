using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// The reading end of a named fifo, opened without waiting for a writer (O_NONBLOCK), so a fifo
/// whose writer never comes costs no thread: every wait is on the <see cref="FdPoller"/>.
/// </summary>
/// <remarks>
/// A writer blocked in open(2) for writing goes on as soon as this reader exists. pipe(7) and the
/// kernel's pipe_poll: a reader is told of a hang-up only once a writer opened after it has closed,
/// so waiting for "readable" before a first writer really waits, where a read would answer an
/// end of file at once.
/// </remarks>
public sealed class FifoReader : IDisposable
{
    private const int S_IFMT = 0xF000, S_IFIFO = 0x1000;
    private const uint STATX_TYPE = 0x1;
    private readonly SafeFd _fd;

    private FifoReader(SafeFd fd) => _fd = fd;

    /// <summary>Opens <paramref name="path"/> for reading; null when it does not exist.</summary>
    /// <exception cref="SyscallException">it cannot be opened, or it is not a fifo (ENOTSUP).</exception>
    public static FifoReader? Open(string path)
    {
        var fd = Interop.Open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd.IsInvalid)
        {
            var error = Interop.Error("open", path);
            fd.Dispose();
            return error.Errno == ENOENT ? null : throw error;
        }

        if (Interop.Statx(fd, STATX_TYPE, out var st) != 0 || (st.stx_mode & S_IFMT) != S_IFIFO)
        {
            fd.Dispose();
            throw Interop.Error(ENOTSUP, "open (not a fifo)", path);
        }

        return new FifoReader(fd);
    }

    /// <summary>
    /// What the writers that open the fifo from now on write, up to the moment the last of them
    /// closes it (at most <paramref name="limit"/> bytes are kept). Waits for a first writer as long
    /// as it takes, unless canceled.
    /// </summary>
    public async Task<byte[]> ReadToEndAsync(int limit, CancellationToken cancellationToken)
    {
        var kept = new MemoryStream();
        var buffer = new byte[512];
        bool woken = false;
        while (true)
        {
            long n = Interop.Read(_fd, buffer);
            if (n > 0)
            {
                kept.Write(buffer, 0, (int)Math.Min(n, Math.Max(0, limit - kept.Length)));
                continue;
            }

            // 0 is the end once a writer has been here (bytes came, or the poller saw it hang up);
            // before that it only means no writer has opened the fifo yet.
            if (n == 0 && (woken || kept.Length > 0))
            {
                return kept.ToArray();
            }

            int errno = n < 0 ? Interop.LastErrno : 0;
            if (errno == EINTR)
            {
                continue;
            }

            if (n < 0 && errno != EAGAIN)
            {
                throw Interop.Error(errno, "read", "fifo");
            }

            await FdPoller.Shared.WaitAsync(_fd, write: false, cancellationToken).ConfigureAwait(false);
            woken = true;
        }
    }

    public void Dispose() => _fd.Dispose();
}
