using System.Buffers;
using System.IO.Pipelines;

namespace Crid.Streaming.Spdy;

/// <summary>
/// One stream the peer opened. Its two halves close on their own: the peer's with FLAG_FIN (reads
/// then return 0), ours with <see cref="CloseWriteAsync"/>; a RST_STREAM from either side ends both.
/// One reader and one writer at a time; both may run at once.
/// </summary>
internal sealed class SpdyStream
{
    // What the peer sent and nobody has read yet. A peer that honours our window never gets near
    // the pause threshold; one that does not (spdystream ignores windows) stalls the connection's
    // reader here instead of growing memory without bound.
    private readonly Pipe _incoming = new(new PipeOptions(
        pauseWriterThreshold: 1024 * 1024, resumeWriterThreshold: 512 * 1024, useSynchronizationContext: false));

    private readonly SpdyConnection _connection;
    private readonly CancellationTokenSource _reset = new();
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _readerGate = new(1, 1);
    private bool _readerCompleted;
    private bool _replied, _localClosed, _remoteClosed, _wasReset, _discarding;
    private int _unacknowledged;

    internal SpdyStream(SpdyConnection connection, uint id, SpdyHeaders headers, bool remoteClosed, bool localClosed)
    {
        _connection = connection;
        Id = id;
        Headers = headers;
        _remoteClosed = remoteClosed;
        _localClosed = localClosed;
        if (remoteClosed)
            _incoming.Writer.Complete();
    }

    public uint Id { get; }

    public SpdyHeaders Headers { get; }

    /// <summary>Fires when the stream is reset by either side or the connection is lost.</summary>
    public CancellationToken ResetToken => _reset.Token;

    public bool IsReset { get { lock (_lock) return _wasReset; } }

    /// <summary>Our window for sending on this stream (long: without flow control it only shrinks).</summary>
    internal long SendWindow { get; set; }

    internal bool IsDone { get { lock (_lock) return _wasReset || (_localClosed && _remoteClosed); } }

    /// <summary>Accepts the stream (SYN_REPLY, no headers, as kubelet answers). Data may only follow a reply.</summary>
    public async Task ReplyAsync()
    {
        lock (_lock)
        {
            if (_replied || _wasReset)
                return;
            _replied = true;
        }
        await _connection.SendReplyAsync(this).ConfigureAwait(false);
    }

    /// <summary>Refuses or abandons the stream; idempotent.</summary>
    public async Task ResetAsync(RstStatus status)
    {
        if (!MarkReset())
            return;
        await _connection.SendResetAsync(Id, status).ConfigureAwait(false);
    }

    /// <summary>Reads what the peer sent; 0 once it closed its half, reset the stream or the connection ended.</summary>
    public async ValueTask<int> ReadAsync(Memory<byte> into, CancellationToken cancel)
    {
        if (into.IsEmpty)
            return 0;
        await _readerGate.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            while (true)
            {
                lock (_lock)
                {
                    if (_discarding)
                    {
                        CompleteReader();
                        return 0;
                    }
                    if (_wasReset)
                        return 0;
                }
                var result = await _incoming.Reader.ReadAsync(cancel).ConfigureAwait(false);
                var buffer = result.Buffer;
                if (buffer.IsEmpty)
                {
                    _incoming.Reader.AdvanceTo(buffer.End);
                    if (result.IsCompleted)
                        return 0;
                    // Woken by a reset or DiscardIncoming: the checks above answer.
                    continue;
                }
                int n = (int)Math.Min(buffer.Length, into.Length);
                buffer.Slice(0, n).CopyTo(into.Span);
                _incoming.Reader.AdvanceTo(buffer.GetPosition(n));
                await AcknowledgeAsync(n).ConfigureAwait(false);
                return n;
            }
        }
        finally
        {
            _readerGate.Release();
        }
    }

    /// <summary>Sends data on our half. Throws <see cref="IOException"/> once the stream or the connection is gone.</summary>
    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancel = default) =>
        data.IsEmpty ? ValueTask.CompletedTask : _connection.SendDataAsync(this, data, fin: false, cancel);

    /// <summary>Closes our half (an empty data frame with FLAG_FIN); idempotent, and quiet on a reset stream.</summary>
    public async ValueTask CloseWriteAsync()
    {
        lock (_lock)
        {
            if (_localClosed || _wasReset || !_replied)
                return;
        }
        try
        {
            await _connection.SendDataAsync(this, ReadOnlyMemory<byte>.Empty, fin: true, CancellationToken.None).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The stream or connection went away first: the half is closed either way.
        }
    }

    /// <summary>
    /// Stops taking what the peer sends on this stream: it is dropped from now on, not buffered, and
    /// reads return 0. For streams we only write to, and for inputs nobody needs any more.
    /// </summary>
    public void DiscardIncoming()
    {
        lock (_lock)
        {
            if (_discarding)
                return;
            _discarding = true;
        }
        WakeReader();
        // A reader in the middle of a read completes the pipe itself on its way out.
        if (_readerGate.Wait(0))
        {
            try
            {
                CompleteReader();
            }
            finally
            {
                _readerGate.Release();
            }
        }
    }

    /// <summary>Under the reader gate: the pipe's reading end is only ever touched by one thread at a time.</summary>
    private void CompleteReader()
    {
        if (_readerCompleted)
            return;
        _readerCompleted = true;
        _incoming.Reader.Complete();
    }

    private void WakeReader()
    {
        try
        {
            _incoming.Reader.CancelPendingRead();
        }
        catch (InvalidOperationException)
        {
            // Already completed: nobody is waiting.
        }
    }

    // ---- called by the connection ----

    /// <summary>Checks a data frame may be sent now and, with FIN, marks our half closed.</summary>
    internal void BeforeSend(bool fin)
    {
        lock (_lock)
        {
            if (_wasReset)
                throw new IOException($"stream {Id} was reset");
            if (!_replied)
                throw new InvalidOperationException($"stream {Id}: data before the reply");
            if (_localClosed)
                throw new IOException($"stream {Id} is closed for writing");
            if (fin)
                _localClosed = true;
        }
    }

    /// <summary>Copies a data frame's bytes in (reader loop only). False when the stream takes no more data.</summary>
    internal bool Deliver(ReadOnlySequence<byte> data, out bool discarded)
    {
        lock (_lock)
        {
            discarded = _discarding;
            if (_remoteClosed || _wasReset)
                return false;
        }
        if (!discarded)
        {
            foreach (var segment in data)
                _incoming.Writer.Write(segment.Span);
        }
        return true;
    }

    /// <summary>Waits while the consumer is behind (reader loop only).</summary>
    internal async ValueTask FlushIncomingAsync(CancellationToken cancel)
    {
        var flushed = await _incoming.Writer.FlushAsync(cancel).ConfigureAwait(false);
        if (flushed.IsCompleted)
        {
            lock (_lock)
                _discarding = true;
        }
    }

    /// <summary>The peer's FLAG_FIN (reader loop only).</summary>
    internal void RemoteClose()
    {
        lock (_lock)
        {
            if (_remoteClosed)
                return;
            _remoteClosed = true;
        }
        _incoming.Writer.Complete();
    }

    /// <summary>A RST_STREAM from the peer, or the connection's end (reader loop only).</summary>
    internal void RemoteReset()
    {
        MarkReset();
        lock (_lock)
        {
            if (_remoteClosed)
                return;
            _remoteClosed = true;
        }
        _incoming.Writer.Complete();
    }

    internal bool RemoteClosedOrReset { get { lock (_lock) return _remoteClosed || _wasReset; } }

    private bool MarkReset()
    {
        lock (_lock)
        {
            if (_wasReset)
                return false;
            _wasReset = true;
            _localClosed = true;
        }
        // Callbacks run on the pool: this may be called under the connection's locks.
        _ = _reset.CancelAsync();
        // Wakes a reader waiting for data that will now never come.
        WakeReader();
        _connection.Forget(this);
        return true;
    }

    private async ValueTask AcknowledgeAsync(int consumed)
    {
        int update;
        lock (_lock)
        {
            _unacknowledged += consumed;
            // Half the window, as conforming SPDY peers do: frequent enough to never stall the sender.
            if (_unacknowledged < SpdyFrames.DefaultWindow / 2 || _remoteClosed || _wasReset)
            {
                update = 0;
            }
            else
            {
                update = _unacknowledged;
                _unacknowledged = 0;
            }
        }
        await _connection.ConsumedAsync(this, consumed, update).ConfigureAwait(false);
    }

    public override string ToString() => $"stream {Id} ({Headers})";
}
