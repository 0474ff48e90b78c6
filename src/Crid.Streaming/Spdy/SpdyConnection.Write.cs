using System.Buffers;
using System.Buffers.Binary;

namespace Crid.Streaming.Spdy;

internal sealed partial class SpdyConnection
{
    // One frame at a time on the wire, and header blocks compressed in the order they are sent.
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _flow = new();
    private long _sessionSendWindow = SpdyFrames.DefaultWindow;
    private int _peerInitialWindow = SpdyFrames.DefaultWindow;
    private bool _peerFlowControl;
    private int _sessionUnacknowledged;
    private TaskCompletionSource _windowGrew = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _broken;

    /// <summary>Whether the peer has shown it does flow control, so we keep within its windows.</summary>
    public bool PeerFlowControl { get { lock (_flow) return _peerFlowControl; } }

    /// <summary>Whether the peer sent GOAWAY: it opens no more streams.</summary>
    public bool PeerGoneAway => _peerGoneAway;

    internal Task SendReplyAsync(SpdyStream stream) =>
        SendHeadersAsync(FrameType.SynReply, stream.Id, SpdyHeaders.Empty, 0);

    internal async Task SendResetAsync(uint id, RstStatus status)
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(payload, id);
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(4), (uint)status);
        try
        {
            await SendControlAsync(FrameType.RstStream, 0, payload).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The connection is gone, and the stream with it.
        }
    }

    private Task SendGoAwayAsync(GoAwayStatus status)
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(payload, _lastPeerStream);
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(4), (uint)status);
        return SendControlAsync(FrameType.GoAway, 0, payload);
    }

    private async Task SendControlAsync(FrameType type, byte flags, byte[] payload)
    {
        var frame = new byte[SpdyFrames.HeaderLength + payload.Length];
        SpdyFrames.WriteControlHeader(frame, type, flags, payload.Length);
        payload.CopyTo(frame, SpdyFrames.HeaderLength);
        await WriteLockedAsync(frame, frame.Length).ConfigureAwait(false);
    }

    private async Task SendHeadersAsync(FrameType type, uint id, SpdyHeaders headers, byte flags)
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var block = _deflater.Deflate(headers.Encode());
            var frame = new byte[SpdyFrames.HeaderLength + 4 + block.Length];
            SpdyFrames.WriteControlHeader(frame, type, flags, 4 + block.Length);
            BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(SpdyFrames.HeaderLength), id);
            block.CopyTo(frame, SpdyFrames.HeaderLength + 4);
            await WriteAsync(frame, frame.Length).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Data frames of at most MaxDataFrame bytes, each within the peer's windows when it does flow control.</summary>
    internal async ValueTask SendDataAsync(SpdyStream stream, ReadOnlyMemory<byte> data, bool fin, CancellationToken cancel)
    {
        int offset = 0;
        do
        {
            int chunk = Math.Min(data.Length - offset, _options.MaxDataFrame);
            if (chunk > 0)
                chunk = await TakeSendWindowAsync(stream, chunk, cancel).ConfigureAwait(false);
            bool last = offset + chunk == data.Length;
            byte flags = fin && last ? SpdyFrames.FlagFin : (byte)0;
            stream.BeforeSend(flags != 0);
            var frame = ArrayPool<byte>.Shared.Rent(SpdyFrames.HeaderLength + chunk);
            try
            {
                SpdyFrames.WriteDataHeader(frame, stream.Id, flags, chunk);
                data.Span.Slice(offset, chunk).CopyTo(frame.AsSpan(SpdyFrames.HeaderLength));
                await WriteLockedAsync(frame, SpdyFrames.HeaderLength + chunk).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(frame);
            }
            offset += chunk;
        }
        while (offset < data.Length);
        if (fin)
            Forget(stream);
    }

    private async ValueTask<int> TakeSendWindowAsync(SpdyStream stream, int wanted, CancellationToken cancel)
    {
        while (true)
        {
            Task grew;
            lock (_flow)
            {
                long available = Math.Min(stream.SendWindow, _sessionSendWindow);
                if (!_peerFlowControl || available > 0)
                {
                    int n = _peerFlowControl ? (int)Math.Min(available, wanted) : wanted;
                    stream.SendWindow -= n;
                    _sessionSendWindow -= n;
                    return n;
                }
                grew = _windowGrew.Task;
            }
            if (stream.ResetToken.IsCancellationRequested || _lost.IsCancellationRequested)
                throw new IOException($"stream {stream.Id} was closed while waiting for the peer's window");
            try
            {
                await grew.WaitAsync(cancel).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
            {
                throw new IOException($"stream {stream.Id} was closed while waiting for the peer's window");
            }
        }
    }

    private void WakeWindowWaiters()
    {
        TaskCompletionSource grew;
        lock (_flow)
        {
            grew = _windowGrew;
            _windowGrew = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        grew.TrySetResult();
    }

    private void SetPeerInitialWindow(int window)
    {
        lock (_flow)
        {
            // Section 2.6.4: the change applies to every open stream's window, even into the negative.
            int delta = window - _peerInitialWindow;
            _peerInitialWindow = window;
            _peerFlowControl = true;
            foreach (var stream in _streams.Values)
                stream.SendWindow += delta;
        }
        WakeWindowWaiters();
    }

    private async ValueTask OnWindowUpdateAsync(uint id, int delta)
    {
        if (delta == 0)
            throw new SpdyProtocolException($"WINDOW_UPDATE of 0 for stream {id}");
        bool overflow = false;
        lock (_flow)
        {
            _peerFlowControl = true;
            if (id == 0)
            {
                _sessionSendWindow += delta;
                if (_sessionSendWindow > SpdyFrames.MaxWindow)
                    throw new SpdyProtocolException("the session window grew past 2^31-1");
            }
            else if (_streams.TryGetValue(id, out var stream))
            {
                stream.SendWindow += delta;
                overflow = stream.SendWindow > SpdyFrames.MaxWindow;
            }
        }
        if (overflow)
            await SendResetAsync(id, RstStatus.FlowControlError).ConfigureAwait(false);
        WakeWindowWaiters();
    }

    /// <summary>
    /// Our consumers read <paramref name="consumed"/> bytes: the session window is reopened by half
    /// windows, and the stream's by <paramref name="streamUpdate"/> when the stream decided it is time.
    /// </summary>
    internal async ValueTask ConsumedAsync(SpdyStream? stream, int consumed, int streamUpdate)
    {
        int sessionUpdate = 0;
        lock (_flow)
        {
            _sessionUnacknowledged += consumed;
            if (_sessionUnacknowledged >= SpdyFrames.DefaultWindow / 2)
            {
                sessionUpdate = _sessionUnacknowledged;
                _sessionUnacknowledged = 0;
            }
        }
        try
        {
            if (stream is not null && streamUpdate > 0)
                await SendWindowUpdateAsync(stream.Id, streamUpdate).ConfigureAwait(false);
            if (sessionUpdate > 0)
                await SendWindowUpdateAsync(0, sessionUpdate).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The connection is going; nobody needs the window any more.
        }
    }

    private Task SendWindowUpdateAsync(uint id, int delta)
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(payload, id);
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(4), (uint)delta);
        return SendControlAsync(FrameType.WindowUpdate, 0, payload);
    }

    private async Task WriteLockedAsync(byte[] frame, int length)
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            await WriteAsync(frame, length).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Under the write lock. A failed write breaks the connection: the frame boundary is lost.</summary>
    private async Task WriteAsync(byte[] frame, int length)
    {
        if (_broken)
            throw new IOException("the connection is closed");
        try
        {
            // No cancellation: a half-written frame would corrupt the connection; Abort ends a stuck write.
            await _transport.WriteAsync(frame.AsMemory(0, length)).ConfigureAwait(false);
            await _transport.FlushAsync().ConfigureAwait(false);
            Touch();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            _broken = true;
            Lose("writing failed: " + e.Message);
            throw new IOException("the connection is closed", e);
        }
    }
}
