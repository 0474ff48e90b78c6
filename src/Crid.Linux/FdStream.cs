using Microsoft.Win32.SafeHandles;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// A Stream over a non-blocking descriptor that is not a socket (a pty master, a pipe): reads and
/// writes that would block wait on the <see cref="FdPoller"/>, never on a pool thread. One stream
/// reads or writes; a terminal read and written at once uses two streams over two descriptors.
/// </summary>
public sealed class FdStream : Stream
{
    private readonly SafeFileHandle _fd;
    private readonly bool _canRead;

    /// <param name="fd">Owned by the stream from now on; O_NONBLOCK is set on it.</param>
    /// <param name="canRead">true: a reading stream; false: a writing one.</param>
    public FdStream(SafeFileHandle fd, bool canRead)
    {
        ArgumentNullException.ThrowIfNull(fd);
        _fd = fd;
        _canRead = canRead;
        using var lease = fd.Borrow();
        int flags = Interop.CheckIo(fcntl(lease.Fd, F_GETFL), "fcntl F_GETFL");
        Interop.CheckIo(fcntl(lease.Fd, F_SETFL, flags | O_NONBLOCK), "fcntl O_NONBLOCK");
    }

    public override bool CanRead => _canRead && !_fd.IsClosed;

    public override bool CanWrite => !_canRead && !_fd.IsClosed;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>
    /// Reads what is there, waiting for at least one byte. 0 at end of file; for a pty master also
    /// once no process holds the terminal any more (the kernel answers EIO there, not 0).
    /// </summary>
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!_canRead)
        {
            throw new NotSupportedException("a writing stream");
        }

        while (true)
        {
            int n = TryRead(buffer.Span, out int errno);
            if (n >= 0)
            {
                return n;
            }

            if (errno == EIO)
            {
                return 0;
            }

            if (errno != EAGAIN)
            {
                throw Interop.Error(errno, "read");
            }

            await FdPoller.Shared.WaitAsync(_fd, write: false, cancellationToken).ConfigureAwait(false);
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_canRead)
        {
            throw new NotSupportedException("a reading stream");
        }

        while (buffer.Length > 0)
        {
            int n = TryWrite(buffer.Span, out int errno);
            if (n >= 0)
            {
                buffer = buffer[n..];
                continue;
            }

            if (errno != EAGAIN)
            {
                throw Interop.Error(errno, "write");
            }

            await FdPoller.Shared.WaitAsync(_fd, write: true, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>What can be read now without waiting: -1 when nothing is there yet.</summary>
    public int ReadAvailable(Span<byte> buffer)
    {
        int n = TryRead(buffer, out int errno);
        if (n >= 0)
        {
            return n;
        }

        return errno == EIO ? 0 : errno == EAGAIN ? -1 : throw Interop.Error(errno, "read");
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    // The synchronous forms would have to block a thread: callers of this stream are async.
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("use ReadAsync");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("use WriteAsync");

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _fd.Dispose();
        }

        base.Dispose(disposing);
    }

    private int TryRead(Span<byte> buffer, out int errno)
    {
        while (true)
        {
            long n = Interop.Read(_fd, buffer);
            errno = n < 0 ? Interop.LastErrno : 0;
            if (errno != EINTR)
            {
                return (int)n;
            }
        }
    }

    private int TryWrite(ReadOnlySpan<byte> buffer, out int errno)
    {
        while (true)
        {
            long n = Interop.Write(_fd, buffer);
            errno = n < 0 ? Interop.LastErrno : 0;
            if (errno != EINTR)
            {
                return (int)n;
            }
        }
    }
}
