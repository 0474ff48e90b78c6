using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;

namespace Crid.Streaming.Spdy;

internal sealed partial class SpdyConnection
{
    private readonly byte[] _frameHeader = new byte[SpdyFrames.HeaderLength];

    private async Task ReadLoopAsync()
    {
        string reason = "the peer closed the connection";
        try
        {
            while (true)
            {
                var result = await _input.ReadAtLeastAsync(SpdyFrames.HeaderLength, _stopReading.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                if (buffer.Length < SpdyFrames.HeaderLength)
                {
                    if (!buffer.IsEmpty)
                        reason = "the peer closed the connection in the middle of a frame";
                    break;
                }
                buffer.Slice(0, SpdyFrames.HeaderLength).CopyTo(_frameHeader);
                var header = SpdyFrames.Header.Parse(_frameHeader);
                Touch();
                if (header.IsControl)
                {
                    if (!await ReadControlFrameAsync(header, result).ConfigureAwait(false))
                    {
                        reason = "the peer closed the connection in the middle of a frame";
                        break;
                    }
                }
                else
                {
                    _input.AdvanceTo(buffer.GetPosition(SpdyFrames.HeaderLength));
                    if (!await ReadDataFrameAsync(header).ConfigureAwait(false))
                    {
                        reason = "the peer closed the connection in the middle of a frame";
                        break;
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            reason = LostReason ?? "stopped";
        }
        catch (SpdyProtocolException e)
        {
            reason = "protocol error: " + e.Message;
            StreamingLog.ProtocolError(_log, e.Message);
            await SayGoAwayAsync(GoAwayStatus.ProtocolError).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // Kestrel reports a vanished peer as IOException (ConnectionResetException) or an aborted read.
            reason = "the connection broke: " + e.Message;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A bug of ours, not the peer's: this connection ends, the server goes on.
            StreamingLog.SessionCrashed(_log, e);
            reason = "crashed: " + e.Message;
            _abortTransport();
        }
        finally
        {
            Lose(reason);
            foreach (var stream in _streams.Values)
                stream.RemoteReset();
            await _input.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <returns>False at end of input.</returns>
    private async ValueTask<bool> ReadControlFrameAsync(SpdyFrames.Header header, ReadResult result)
    {
        if (header.Version != SpdyFrames.Version)
            throw new SpdyProtocolException($"control frame of version {header.Version}, not {SpdyFrames.Version}");
        if (header.Length > _options.MaxControlFrame)
            throw new SpdyProtocolException($"{header.Type} frame of {header.Length} bytes, more than {_options.MaxControlFrame}");
        int total = SpdyFrames.HeaderLength + header.Length;
        if (result.Buffer.Length < total)
        {
            // Examined all of it and it is not enough: the next read waits for more.
            _input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            result = await _input.ReadAtLeastAsync(total, _stopReading.Token).ConfigureAwait(false);
            if (result.Buffer.Length < total)
                return false;
        }
        byte[] payload = result.Buffer.Slice(SpdyFrames.HeaderLength, header.Length).ToArray();
        _input.AdvanceTo(result.Buffer.GetPosition(total));

        switch (header.Type)
        {
            case FrameType.SynStream:
                await OnSynStreamAsync(header.Flags, payload).ConfigureAwait(false);
                break;
            case FrameType.SynReply:
                // We open no streams, so there is nothing to reply to; the block still moves the inflater on.
                RequireLength(header, payload, 4, exact: false);
                InflateHeaders(payload.AsSpan(4));
                await SendResetAsync(StreamIdAt(payload, 0), RstStatus.ProtocolError).ConfigureAwait(false);
                break;
            case FrameType.RstStream:
                RequireLength(header, payload, 8, exact: true);
                OnRstStream(StreamIdAt(payload, 0), BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(4)));
                break;
            case FrameType.Settings:
                OnSettings(payload);
                break;
            case FrameType.Ping:
                RequireLength(header, payload, 4, exact: true);
                await OnPingAsync(payload).ConfigureAwait(false);
                break;
            case FrameType.GoAway:
                RequireLength(header, payload, 8, exact: true);
                OnGoAway(StreamIdAt(payload, 0), BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(4)));
                break;
            case FrameType.Headers:
                RequireLength(header, payload, 4, exact: false);
                InflateHeaders(payload.AsSpan(4));
                OnHeaders(StreamIdAt(payload, 0), header.Flags);
                break;
            case FrameType.WindowUpdate:
                RequireLength(header, payload, 8, exact: true);
                await OnWindowUpdateAsync(StreamIdAt(payload, 0), (int)(BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(4)) & 0x7FFFFFFF)).ConfigureAwait(false);
                break;
            default:
                // Section 2.2.1: a control frame of an unknown type is ignored.
                break;
        }
        return true;
    }

    private static void RequireLength(SpdyFrames.Header header, byte[] payload, int length, bool exact)
    {
        if (exact ? payload.Length != length : payload.Length < length)
            throw new SpdyProtocolException($"{header.Type} frame of {payload.Length} bytes");
    }

    private static uint StreamIdAt(byte[] payload, int at) => BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(at)) & 0x7FFFFFFF;

    private SpdyHeaders InflateHeaders(ReadOnlySpan<byte> compressed) => SpdyHeaders.Decode(_inflater.Inflate(compressed));

    private async ValueTask OnSynStreamAsync(byte flags, byte[] payload)
    {
        if (payload.Length < 10)
            throw new SpdyProtocolException($"SYN_STREAM frame of {payload.Length} bytes");
        uint id = StreamIdAt(payload, 0);
        // Always inflate, even for a stream we refuse: the compression state is the connection's.
        var headers = InflateHeaders(payload.AsSpan(10));
        if (id == 0)
            throw new SpdyProtocolException("SYN_STREAM for stream 0");

        // Section 2.3.2: the client's ids are odd and increase; spdystream refuses anything else alike.
        if (id % 2 == 0 || id <= _lastPeerStream)
        {
            await SendResetAsync(id, RstStatus.ProtocolError).ConfigureAwait(false);
            return;
        }
        _lastPeerStream = id;
        if (Volatile.Read(ref _closing) != 0 || _streams.Count >= _options.MaxStreams)
        {
            await SendResetAsync(id, RstStatus.RefusedStream).ConfigureAwait(false);
            return;
        }
        var stream = new SpdyStream(this, id, headers,
            remoteClosed: (flags & SpdyFrames.FlagFin) != 0,
            localClosed: (flags & SpdyFrames.FlagUnidirectional) != 0);
        lock (_flow)
            stream.SendWindow = _peerInitialWindow;
        _streams[id] = stream;
        StreamingLog.StreamOpened(_log, id, headers);
        if (!_incoming.Writer.TryWrite(stream))
        {
            // The session stopped taking streams (it is closing).
            await stream.ResetAsync(RstStatus.RefusedStream).ConfigureAwait(false);
        }
    }

    private void OnRstStream(uint id, uint status)
    {
        if (_streams.TryGetValue(id, out var stream))
        {
            StreamingLog.StreamReset(_log, id, status);
            stream.RemoteReset();
        }
    }

    private void OnSettings(byte[] payload)
    {
        if (payload.Length < 4)
            throw new SpdyProtocolException($"SETTINGS frame of {payload.Length} bytes");
        uint count = BinaryPrimitives.ReadUInt32BigEndian(payload);
        if ((ulong)payload.Length != 4 + 8UL * count)
            throw new SpdyProtocolException($"SETTINGS frame of {payload.Length} bytes for {count} entries");
        for (int i = 0; i < count; i++)
        {
            uint id = BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(4 + 8 * i)) & 0xFFFFFF;
            uint value = BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(8 + 8 * i));
            if (id == SpdyFrames.SettingsInitialWindowSize)
            {
                if (value > SpdyFrames.MaxWindow)
                    throw new SpdyProtocolException($"initial window of {value} bytes");
                SetPeerInitialWindow((int)value);
            }
        }
    }

    private async ValueTask OnPingAsync(byte[] payload)
    {
        // Our ids would be even; an odd one is the peer's, to be echoed unchanged (section 2.6.5).
        uint id = BinaryPrimitives.ReadUInt32BigEndian(payload);
        if (id % 2 == 1)
            await SendControlAsync(FrameType.Ping, 0, payload).ConfigureAwait(false);
    }

    private void OnGoAway(uint lastGood, uint status)
    {
        StreamingLog.PeerGoAway(_log, lastGood, status);
        _peerGoneAway = true;
        // The peer opens nothing more; the streams it has keep going.
        _incoming.Writer.TryComplete();
    }

    private void OnHeaders(uint id, byte flags)
    {
        if ((flags & SpdyFrames.FlagFin) != 0 && _streams.TryGetValue(id, out var stream))
        {
            stream.RemoteClose();
            Forget(stream);
        }
    }

    /// <returns>False at end of input.</returns>
    private async ValueTask<bool> ReadDataFrameAsync(SpdyFrames.Header header)
    {
        if (header.StreamId == 0)
            throw new SpdyProtocolException("data frame for stream 0");
        _streams.TryGetValue(header.StreamId, out var stream);
        if (stream is null && (header.StreamId % 2 == 0 || header.StreamId > _lastPeerStream))
        {
            // Section 2.2.2: data for a stream that was never opened.
            await SendResetAsync(header.StreamId, RstStatus.InvalidStream).ConfigureAwait(false);
        }
        else if (stream is not null && stream.RemoteClosedOrReset)
        {
            await SendResetAsync(header.StreamId, RstStatus.StreamAlreadyClosed).ConfigureAwait(false);
            stream = null;
        }

        int remaining = header.Length;
        int dropped = 0;
        while (remaining > 0)
        {
            var result = await _input.ReadAsync(_stopReading.Token).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.IsEmpty && result.IsCompleted)
                return false;
            int take = (int)Math.Min(buffer.Length, remaining);
            var slice = buffer.Slice(0, take);
            bool delivered = false, discarded = false;
            if (stream is not null)
                delivered = stream.Deliver(slice, out discarded);
            _input.AdvanceTo(slice.End);
            remaining -= take;
            if (delivered && !discarded)
                await stream!.FlushIncomingAsync(_stopReading.Token).ConfigureAwait(false);
            else
                dropped += take;
        }
        // What nobody will read counts as read at once, or a conforming peer would wait for it forever.
        if (dropped > 0)
            await ConsumedAsync(stream, dropped, stream is null || stream.RemoteClosedOrReset ? 0 : dropped).ConfigureAwait(false);

        if ((header.Flags & SpdyFrames.FlagFin) != 0 && stream is not null)
        {
            stream.RemoteClose();
            Forget(stream);
        }
        return true;
    }
}
