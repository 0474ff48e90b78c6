namespace Crid.Streaming.Spdy;

/// <summary>One direction of a SPDY stream as a <see cref="Stream"/>, for the container side.</summary>
internal sealed class SpdyIoStream : Stream
{
    private readonly SpdyStream _stream;
    private readonly bool _read;

    private SpdyIoStream(SpdyStream stream, bool read)
    {
        _stream = stream;
        _read = read;
    }

    public static SpdyIoStream Reading(SpdyStream stream) => new(stream, read: true);

    public static SpdyIoStream Writing(SpdyStream stream) => new(stream, read: false);

    public override bool CanRead => _read;

    public override bool CanWrite => !_read;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _read ? _stream.ReadAsync(buffer, cancellationToken) : throw new NotSupportedException("this stream only writes");

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        !_read ? _stream.WriteAsync(buffer, cancellationToken) : throw new NotSupportedException("this stream only reads");

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) =>
        WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
        // Every write is a frame on the wire already.
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override async ValueTask DisposeAsync()
    {
        if (_read)
            _stream.DiscardIncoming();
        else
            await _stream.CloseWriteAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            if (_read)
                _stream.DiscardIncoming();
            else
                _stream.CloseWriteAsync().AsTask().GetAwaiter().GetResult();
        }
        base.Dispose(disposing);
    }
}
