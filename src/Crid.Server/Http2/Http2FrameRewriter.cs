using System.Buffers;
using System.Buffers.Binary;

namespace Crid.Server.Http2;

/// <summary>The client broke RFC 7540 framing in a way that stops us from following its header blocks.</summary>
internal sealed class Http2RewriteException(string message) : Exception(message);

/// <summary>
/// Rewrites the client-to-server byte stream of one HTTP/2 connection so that every request
/// carries <c>:authority: localhost</c>.
/// </summary>
/// <remarks>
/// <para>
/// Why: clients built on grpc-go before 1.31-era kubelet/crictl (and grpcurl) send the Unix socket
/// <em>path</em> as <c>:authority</c>. Kestrel validates <c>:authority</c> as a host and resets
/// those streams with PROTOCOL_ERROR before any application code runs (dotnet/aspnetcore#47043).
/// The authority of a Unix socket connection means nothing to us, so we replace it.
/// </para>
/// <para>
/// How: the 24-octet connection preface (RFC 7540 Section 3.5) and every frame other than HEADERS
/// and CONTINUATION pass through byte for byte (DATA is streamed, never buffered whole). A header
/// block (HEADERS plus CONTINUATION up to END_HEADERS, RFC 7540 Section 6.2 and 6.10) is decoded
/// with the client's HPACK context and re-encoded without any HPACK state (<see cref="HpackEncoder"/>),
/// so Kestrel's decoder never sees the client's dynamic table. Padding and priority fields are
/// dropped: Kestrel ignores priority and padding carries nothing.
/// </para>
/// <para>
/// Whatever Kestrel would reject anyway (bad SETTINGS, DATA on closed streams, oversized frames
/// other than header frames, ...) is left for Kestrel to reject. What would make our HPACK context
/// diverge from the client's raises <see cref="Http2RewriteException"/> or
/// <see cref="HpackDecodingException"/>: the caller must then drop the connection, as the server
/// would (COMPRESSION_ERROR and PROTOCOL_ERROR are connection errors, RFC 7540 Section 5.4.1).
/// </para>
/// </remarks>
internal sealed class Http2FrameRewriter : IDisposable
{
    public const int FrameHeaderLength = 9;

    /// <summary>SETTINGS_MAX_FRAME_SIZE's initial value (RFC 7540 Section 6.5.2), also Kestrel's default.</summary>
    public const int DefaultMaxFrameSize = 16384;

    public const byte TypeData = 0x0;
    public const byte TypeHeaders = 0x1;
    public const byte TypePriority = 0x2;
    public const byte TypeRstStream = 0x3;
    public const byte TypeSettings = 0x4;
    public const byte TypePushPromise = 0x5;
    public const byte TypePing = 0x6;
    public const byte TypeGoAway = 0x7;
    public const byte TypeWindowUpdate = 0x8;
    public const byte TypeContinuation = 0x9;

    public const byte FlagEndStream = 0x1;
    public const byte FlagAck = 0x1;
    public const byte FlagEndHeaders = 0x4;
    public const byte FlagPadded = 0x8;
    public const byte FlagPriority = 0x20;

    /// <summary>The client connection preface (RFC 7540 Section 3.5).</summary>
    public static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    private readonly HpackDecoder _decoder;
    private readonly HpackEncoder _encoder = new();
    private readonly int _maxOutputFrameSize;
    private readonly int _maxHeaderBlockSize;

    private int _prefaceMatched;
    private bool _transparent;
    private long _passthroughRemaining;

    // The header block being collected: its stream (0 when none), END_STREAM from its HEADERS
    // frame, and the fragments seen so far when it spans several frames.
    private int _blockStreamId;
    private bool _blockEndStream;
    private byte[] _block = [];
    private int _blockLength;

    /// <param name="maxDynamicTableSize">The SETTINGS_HEADER_TABLE_SIZE the server advertises (Kestrel: Http2Limits.HeaderTableSize, 4096).</param>
    /// <param name="maxOutputFrameSize">The server's SETTINGS_MAX_FRAME_SIZE, which our re-encoded frames must respect (Kestrel: Http2Limits.MaxFrameSize, 16384).</param>
    /// <param name="maxHeaderBlockSize">Most octets one client header block may have, encoded or decoded; more drops the connection.</param>
    public Http2FrameRewriter(
        int maxDynamicTableSize = HpackDecoder.DefaultMaxDynamicTableSize,
        int maxOutputFrameSize = DefaultMaxFrameSize,
        int maxHeaderBlockSize = 256 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxOutputFrameSize, DefaultMaxFrameSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxHeaderBlockSize);
        _decoder = new HpackDecoder(maxDynamicTableSize, maxHeaderBlockSize);
        _maxOutputFrameSize = maxOutputFrameSize;
        _maxHeaderBlockSize = maxHeaderBlockSize;
    }

    /// <summary>True once the input turned out not to start with the HTTP/2 preface: it is then passed on untouched for Kestrel to refuse.</summary>
    public bool IsTransparent => _transparent;

    /// <summary>Number of header blocks rewritten so far.</summary>
    public long HeaderBlocksRewritten { get; private set; }

    /// <summary>
    /// Consumes as much of <paramref name="input"/> as it can, writing the rewritten stream to
    /// <paramref name="output"/>. A header frame is only consumed once it is entirely in
    /// <paramref name="input"/>; everything else is consumed as it comes.
    /// </summary>
    /// <returns>Where the unconsumed input starts: hand it in again, with more data, next time.</returns>
    public SequencePosition Process(in ReadOnlySequence<byte> input, IBufferWriter<byte> output)
    {
        var reader = new SequenceReader<byte>(input);
        Span<byte> header = stackalloc byte[FrameHeaderLength];
        while (true)
        {
            if (_transparent)
            {
                Copy(ref reader, reader.Remaining, output);
                break;
            }

            if (_prefaceMatched < Preface.Length)
            {
                if (!MatchPreface(ref reader, output))
                {
                    break;
                }
                continue;
            }

            if (_passthroughRemaining > 0)
            {
                long n = Math.Min(_passthroughRemaining, reader.Remaining);
                if (n == 0)
                {
                    break;
                }
                Copy(ref reader, n, output);
                _passthroughRemaining -= n;
                continue;
            }

            // RFC 7540 Section 4.1: 24-bit length, 8-bit type, 8-bit flags, R bit + 31-bit stream id.
            if (!reader.TryCopyTo(header))
            {
                break;
            }
            int length = (header[0] << 16) | (header[1] << 8) | header[2];
            byte type = header[3];
            byte flags = header[4];
            int streamId = BinaryPrimitives.ReadInt32BigEndian(header[5..]) & 0x7FFFFFFF;

            if (_blockStreamId != 0 && (type != TypeContinuation || streamId != _blockStreamId))
            {
                // RFC 7540 Section 6.10: a header block must be continued by CONTINUATION frames
                // of the same stream, with nothing in between.
                throw new Http2RewriteException($"frame type {type} on stream {streamId} inside the header block of stream {_blockStreamId} (RFC 7540 Section 6.10)");
            }

            if (type is TypeHeaders or TypeContinuation)
            {
                if (length > _maxHeaderBlockSize)
                {
                    throw new Http2RewriteException($"header frame of {length} octets exceeds {_maxHeaderBlockSize}");
                }
                if (reader.Remaining < FrameHeaderLength + length)
                {
                    // Wait for the whole frame: header frames are small (at most the frame size the
                    // server advertised, 16 KiB by default).
                    break;
                }
                reader.Advance(FrameHeaderLength);
                ReadOnlySequence<byte> payload = reader.UnreadSequence.Slice(0, length);
                reader.Advance(length);
                if (type == TypeHeaders)
                {
                    OnHeaders(flags, streamId, payload, output);
                }
                else
                {
                    OnContinuation(flags, streamId, payload, output);
                }
                continue;
            }

            if (type == TypePushPromise)
            {
                // A client must not send PUSH_PROMISE (RFC 7540 Section 8.2), and its header block
                // would feed the HPACK context, which we could not keep in step without it.
                throw new Http2RewriteException("PUSH_PROMISE from a client (RFC 7540 Section 8.2)");
            }

            // Any other frame (DATA, SETTINGS, PING, WINDOW_UPDATE, RST_STREAM, PRIORITY, GOAWAY,
            // unknown types, RFC 7540 Section 4.1 says to ignore those): untouched.
            Copy(ref reader, FrameHeaderLength, output);
            _passthroughRemaining = length;
        }
        return reader.Position;
    }

    public void Dispose()
    {
        _decoder.Dispose();
        _encoder.Dispose();
        if (_block.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_block);
            _block = [];
        }
    }

    private bool MatchPreface(ref SequenceReader<byte> reader, IBufferWriter<byte> output)
    {
        ReadOnlySpan<byte> span = reader.UnreadSpan;
        if (span.IsEmpty)
        {
            return false;
        }
        int n = Math.Min(span.Length, Preface.Length - _prefaceMatched);
        if (!span[..n].SequenceEqual(Preface.Slice(_prefaceMatched, n)))
        {
            // Not HTTP/2 with prior knowledge: step aside and let Kestrel answer it.
            _transparent = true;
            return true;
        }
        output.Write(span[..n]);
        reader.Advance(n);
        _prefaceMatched += n;
        return true;
    }

    private void OnHeaders(byte flags, int streamId, ReadOnlySequence<byte> payload, IBufferWriter<byte> output)
    {
        if (streamId == 0)
        {
            throw new Http2RewriteException("HEADERS on stream 0 (RFC 7540 Section 6.2)");
        }

        // RFC 7540 Section 6.2: [Pad Length (8)] [E + Stream Dependency (32), Weight (8)] fragment [Padding].
        int length = (int)payload.Length;
        int offset = 0;
        int padLength = 0;
        Span<byte> fields = stackalloc byte[6];
        payload.Slice(0, Math.Min(length, fields.Length)).CopyTo(fields);
        if ((flags & FlagPadded) != 0)
        {
            if (length < 1)
            {
                throw new Http2RewriteException("PADDED HEADERS without a Pad Length (RFC 7540 Section 6.2)");
            }
            padLength = fields[0];
            offset = 1;
        }
        if ((flags & FlagPriority) != 0)
        {
            if (length < offset + 5)
            {
                throw new Http2RewriteException("HEADERS too short for its priority fields (RFC 7540 Section 6.2)");
            }
            int dependency = BinaryPrimitives.ReadInt32BigEndian(fields[offset..]) & 0x7FFFFFFF;
            if (dependency == streamId)
            {
                // RFC 7540 Section 5.3.1: a stream cannot depend on itself. Kestrel would refuse it
                // but never sees the field once we drop it, so refuse it here.
                throw new Http2RewriteException($"stream {streamId} depends on itself (RFC 7540 Section 5.3.1)");
            }
            offset += 5;
        }
        int fragmentLength = length - offset - padLength;
        if (fragmentLength < 0)
        {
            // RFC 7540 Section 6.2: padding that is as long as the payload is a PROTOCOL_ERROR.
            throw new Http2RewriteException("HEADERS padding exceeds the payload (RFC 7540 Section 6.2)");
        }

        _blockStreamId = streamId;
        _blockEndStream = (flags & FlagEndStream) != 0;
        _blockLength = 0;
        OnFragment(payload.Slice(offset, fragmentLength), (flags & FlagEndHeaders) != 0, output);
    }

    private void OnContinuation(byte flags, int streamId, ReadOnlySequence<byte> payload, IBufferWriter<byte> output)
    {
        if (_blockStreamId == 0)
        {
            throw new Http2RewriteException($"CONTINUATION on stream {streamId} outside a header block (RFC 7540 Section 6.10)");
        }
        OnFragment(payload, (flags & FlagEndHeaders) != 0, output);
    }

    private void OnFragment(ReadOnlySequence<byte> fragment, bool endHeaders, IBufferWriter<byte> output)
    {
        if (endHeaders && _blockLength == 0 && fragment.IsSingleSegment)
        {
            // The common case (a whole block in one frame, in one buffer segment): no copy.
            EmitBlock(fragment.FirstSpan, output);
            return;
        }

        int total = _blockLength + (int)fragment.Length;
        if (total > _maxHeaderBlockSize)
        {
            throw new Http2RewriteException($"header block exceeds {_maxHeaderBlockSize} octets");
        }
        if (total > _block.Length)
        {
            byte[] bigger = ArrayPool<byte>.Shared.Rent(Math.Max(total, 1024));
            _block.AsSpan(0, _blockLength).CopyTo(bigger);
            if (_block.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(_block);
            }
            _block = bigger;
        }
        fragment.CopyTo(_block.AsSpan(_blockLength));
        _blockLength = total;
        if (endHeaders)
        {
            EmitBlock(_block.AsSpan(0, _blockLength), output);
        }
    }

    private void EmitBlock(ReadOnlySpan<byte> block, IBufferWriter<byte> output)
    {
        _encoder.Reset();
        var sink = new AuthorityRewritingSink(_encoder);
        _decoder.Decode(block, ref sink);
        WriteHeaderFrames(output, _blockStreamId, _blockEndStream, _encoder.WrittenSpan, _maxOutputFrameSize);
        _blockStreamId = 0;
        _blockEndStream = false;
        _blockLength = 0;
        HeaderBlocksRewritten++;
    }

    /// <summary>
    /// Writes <paramref name="block"/> as one HEADERS frame, followed by CONTINUATION frames when
    /// it exceeds <paramref name="maxFrameSize"/> (RFC 7540 Section 4.3). END_STREAM goes on the
    /// HEADERS frame (it is meaningless on CONTINUATION, Section 6.10), END_HEADERS on the last frame.
    /// </summary>
    internal static void WriteHeaderFrames(IBufferWriter<byte> output, int streamId, bool endStream, ReadOnlySpan<byte> block, int maxFrameSize)
    {
        byte type = TypeHeaders;
        byte flags = endStream ? FlagEndStream : (byte)0;
        do
        {
            int n = Math.Min(block.Length, maxFrameSize);
            bool last = n == block.Length;
            Span<byte> dst = output.GetSpan(FrameHeaderLength + n);
            WriteFrameHeader(dst, n, type, last ? (byte)(flags | FlagEndHeaders) : flags, streamId);
            block[..n].CopyTo(dst[FrameHeaderLength..]);
            output.Advance(FrameHeaderLength + n);
            block = block[n..];
            type = TypeContinuation;
            flags = 0;
        }
        while (!block.IsEmpty);
    }

    internal static void WriteFrameHeader(Span<byte> destination, int length, byte type, byte flags, int streamId)
    {
        destination[0] = (byte)(length >> 16);
        destination[1] = (byte)(length >> 8);
        destination[2] = (byte)length;
        destination[3] = type;
        destination[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(destination[5..], streamId & 0x7FFFFFFF);
    }

    private static void Copy(ref SequenceReader<byte> reader, long count, IBufferWriter<byte> output)
    {
        while (count > 0)
        {
            ReadOnlySpan<byte> span = reader.UnreadSpan;
            int n = (int)Math.Min(span.Length, count);
            output.Write(span[..n]);
            reader.Advance(n);
            count -= n;
        }
    }

    /// <summary>Re-encodes every field as is, except <c>:authority</c>, whatever its value (even empty), which becomes <c>localhost</c>.</summary>
    private readonly struct AuthorityRewritingSink(HpackEncoder encoder) : IHpackHeaderSink
    {
        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed)
        {
            if (name.SequenceEqual(":authority"u8))
            {
                value = "localhost"u8;
            }
            encoder.WriteLiteral(name, value, neverIndexed);
        }
    }
}
