// A minimal HTTP/2 client for tests: it writes raw client bytes (e.g. a recorded .c2s file) to a
// Unix socket and reports what the server sent back, frame by frame and stream by stream.
// Self-contained apart from Crid.Server's HpackDecoder (internal, reached through
// InternalsVisibleTo), so an end-to-end test project can compile this same file with
// <Compile Include="../Crid.Server.Tests/Http2/H2Client.cs" />.
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Crid.Server.Http2;

namespace Crid.Tests.Http2;

/// <summary>One HTTP/2 frame (RFC 7540 Section 4.1).</summary>
internal sealed record H2Frame(byte Type, byte Flags, int StreamId, byte[] Payload)
{
    public const byte Data = 0x0;
    public const byte Headers = 0x1;
    public const byte Priority = 0x2;
    public const byte RstStream = 0x3;
    public const byte Settings = 0x4;
    public const byte PushPromise = 0x5;
    public const byte Ping = 0x6;
    public const byte GoAway = 0x7;
    public const byte WindowUpdate = 0x8;
    public const byte Continuation = 0x9;

    public const byte FlagEndStream = 0x1;
    public const byte FlagAck = 0x1;
    public const byte FlagEndHeaders = 0x4;
    public const byte FlagPadded = 0x8;
    public const byte FlagPriority = 0x20;

    public bool HasFlag(byte flag) => (Flags & flag) != 0;

    /// <summary>The frame as bytes on the wire.</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[9 + Payload.Length];
        bytes[0] = (byte)(Payload.Length >> 16);
        bytes[1] = (byte)(Payload.Length >> 8);
        bytes[2] = (byte)Payload.Length;
        bytes[3] = Type;
        bytes[4] = Flags;
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(5), StreamId);
        Payload.CopyTo(bytes, 9);
        return bytes;
    }

    public override string ToString() => $"{TypeName(Type)}(stream {StreamId}, flags 0x{Flags:x2}, {Payload.Length} B)";

    public static string TypeName(byte type) => type switch
    {
        Data => "DATA",
        Headers => "HEADERS",
        Priority => "PRIORITY",
        RstStream => "RST_STREAM",
        Settings => "SETTINGS",
        PushPromise => "PUSH_PROMISE",
        Ping => "PING",
        GoAway => "GOAWAY",
        WindowUpdate => "WINDOW_UPDATE",
        Continuation => "CONTINUATION",
        _ => $"type{type}",
    };
}

/// <summary>What happened on one stream the client opened.</summary>
internal sealed class H2StreamResult(int streamId)
{
    public int StreamId { get; } = streamId;

    /// <summary>The request header fields the client sent (decoded with the client's HPACK context).</summary>
    public List<KeyValuePair<string, string>> RequestHeaders { get; } = [];

    /// <summary>Every frame the server sent on this stream, in order.</summary>
    public List<(byte Type, byte Flags)> Frames { get; } = [];

    /// <summary>Each header block the server sent (response headers, then trailers), decoded.</summary>
    public List<List<KeyValuePair<string, string>>> HeaderBlocks { get; } = [];

    /// <summary>All DATA payloads (padding removed), concatenated.</summary>
    public MemoryStream Data { get; } = new();

    /// <summary>Error codes of RST_STREAM frames from the server (RFC 7540 Section 7: 1 = PROTOCOL_ERROR).</summary>
    public List<uint> RstStreamErrorCodes { get; } = [];

    /// <summary>The server ended the stream (END_STREAM or RST_STREAM).</summary>
    public bool Ended { get; set; }

    public string? Path => Request(":path");

    public string? Status => Response(":status");

    public string? GrpcStatus => Response("grpc-status");

    public string? GrpcMessage => Response("grpc-message");

    public string? Request(string name) => RequestHeaders.FirstOrDefault(h => h.Key == name).Value;

    /// <summary>The last value of <paramref name="name"/> across the response header blocks (so trailers win).</summary>
    public string? Response(string name)
    {
        string? value = null;
        foreach (var block in HeaderBlocks)
        {
            foreach (var h in block)
            {
                if (h.Key == name)
                {
                    value = h.Value;
                }
            }
        }
        return value;
    }

    /// <summary>The gRPC messages in <see cref="Data"/> (5-octet length-prefixed framing).</summary>
    public List<byte[]> GrpcMessages()
    {
        var messages = new List<byte[]>();
        ReadOnlySpan<byte> data = Data.ToArray();
        while (data.Length >= 5)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(data[1..]);
            messages.Add(data.Slice(5, length).ToArray());
            data = data[(5 + length)..];
        }
        return messages;
    }

    public override string ToString() =>
        $"stream {StreamId} {Path}: frames [{string.Join(", ", Frames.Select(f => $"{H2Frame.TypeName(f.Type)}/0x{f.Flags:x2}"))}]"
        + $" headers [{string.Join("; ", HeaderBlocks.Select(b => string.Join(", ", b.Select(h => $"{h.Key}: {h.Value}"))))}]"
        + $" rst [{string.Join(", ", RstStreamErrorCodes)}] ended={Ended}";
}

/// <summary>The outcome of one <see cref="H2Client.ReplayAsync"/>.</summary>
internal sealed class H2Result
{
    public SortedDictionary<int, H2StreamResult> Streams { get; } = [];

    /// <summary>Every frame the server sent, in order.</summary>
    public List<H2Frame> ServerFrames { get; } = [];

    /// <summary>The server's GOAWAY (last stream id, error code), if any.</summary>
    public (int LastStreamId, uint ErrorCode)? GoAway { get; set; }

    /// <summary>The server closed the connection (or it was reset) before every stream ended.</summary>
    public bool ConnectionClosed { get; set; }

    /// <summary>The client's own header blocks did not decode (request headers are missing from then on).</summary>
    public bool MalformedRequestHeaders { get; set; }

    /// <summary>Not every stream had ended when the timeout elapsed.</summary>
    public bool TimedOut { get; set; }

    public override string ToString() =>
        $"goaway={GoAway?.ToString() ?? "none"} closed={ConnectionClosed} timedOut={TimedOut}\n"
        + string.Join("\n", Streams.Values)
        + "\nserver frames: " + string.Join(", ", ServerFrames);
}

internal static class H2Client
{
    /// <summary>The client connection preface (RFC 7540 Section 3.5).</summary>
    public static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    /// <summary>Splits a client byte stream (starting with the preface) into its frames.</summary>
    public static List<H2Frame> ParseClientStream(ReadOnlySpan<byte> bytes)
    {
        if (!bytes.StartsWith(Preface))
        {
            throw new ArgumentException("client stream does not start with the HTTP/2 preface", nameof(bytes));
        }
        return ParseFrames(bytes[Preface.Length..]);
    }

    /// <summary>Splits bytes into whole frames; trailing partial frames are an error.</summary>
    public static List<H2Frame> ParseFrames(ReadOnlySpan<byte> bytes)
    {
        var frames = new List<H2Frame>();
        while (!bytes.IsEmpty)
        {
            if (bytes.Length < 9)
            {
                throw new ArgumentException("truncated frame header");
            }
            int length = (bytes[0] << 16) | (bytes[1] << 8) | bytes[2];
            if (bytes.Length < 9 + length)
            {
                throw new ArgumentException("truncated frame payload");
            }
            frames.Add(new H2Frame(bytes[3], bytes[4], BinaryPrimitives.ReadInt32BigEndian(bytes[5..]) & 0x7FFFFFFF, bytes.Slice(9, length).ToArray()));
            bytes = bytes[(9 + length)..];
        }
        return frames;
    }

    /// <summary>Preface plus frames, as bytes on the wire.</summary>
    public static byte[] Serialize(IEnumerable<H2Frame> frames)
    {
        var stream = new MemoryStream();
        stream.Write(Preface);
        foreach (var frame in frames)
        {
            stream.Write(frame.ToBytes());
        }
        return stream.ToArray();
    }

    /// <summary>
    /// Connects to <paramref name="socketPath"/>, writes <paramref name="clientBytes"/> as they are,
    /// then reads the server's frames until every stream the client opened has ended, the
    /// connection closes, or <paramref name="timeout"/> (default 5 s) elapses.
    /// </summary>
    /// <param name="writeChunkSize">If set, the bytes are written in writes of this size, to make the server see partial frames.</param>
    /// <remarks>
    /// Only if <paramref name="clientBytes"/> hold no SETTINGS ACK does the client acknowledge the
    /// server's SETTINGS itself: a recorded connection already carries its ACK, and replaying it
    /// must stay byte for byte. The server's PINGs are not answered (Kestrel does not need it).
    /// </remarks>
    public static async Task<H2Result> ReplayAsync(string socketPath, byte[] clientBytes, TimeSpan? timeout = null, int? writeChunkSize = null)
    {
        var result = new H2Result();
        bool clientAcksSettings = false;

        // What the client asked for: the streams it opened and their request headers.
        using (var requestDecoder = new HpackDecoder())
        {
            var blocks = new HeaderBlockAssembler();
            foreach (var frame in ParseClientStream(clientBytes))
            {
                if (frame.Type == H2Frame.Settings && frame.HasFlag(H2Frame.FlagAck))
                {
                    clientAcksSettings = true;
                }
                if (frame.Type == H2Frame.Headers)
                {
                    // The stream is open from its HEADERS frame on, whether its block completes or not.
                    GetStream(result, frame.StreamId);
                }
                if (blocks.Add(frame) is { } block)
                {
                    var stream = GetStream(result, frame.StreamId);
                    if (!result.MalformedRequestHeaders)
                    {
                        try
                        {
                            stream.RequestHeaders.AddRange(DecodeBlock(requestDecoder, block));
                        }
                        catch (HpackDecodingException)
                        {
                            // Deliberately bad input (a test of the server's reaction): the HPACK
                            // context is lost from here on, but the stream was still opened.
                            result.MalformedRequestHeaders = true;
                        }
                    }
                }
            }
        }

        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(5));
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cts.Token);
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            int chunk = writeChunkSize ?? clientBytes.Length;
            for (int offset = 0; offset < clientBytes.Length; offset += chunk)
            {
                await stream.WriteAsync(clientBytes.AsMemory(offset, Math.Min(chunk, clientBytes.Length - offset)), cts.Token);
                await stream.FlushAsync(cts.Token);
            }

            using var responseDecoder = new HpackDecoder();
            var responseBlocks = new HeaderBlockAssembler();
            var header = new byte[9];
            while (!AllEnded(result))
            {
                if (!await ReadExactlyOrEofAsync(stream, header, cts.Token))
                {
                    result.ConnectionClosed = true;
                    break;
                }
                int length = (header[0] << 16) | (header[1] << 8) | header[2];
                var payload = new byte[length];
                if (!await ReadExactlyOrEofAsync(stream, payload, cts.Token))
                {
                    result.ConnectionClosed = true;
                    break;
                }
                var frame = new H2Frame(header[3], header[4], BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & 0x7FFFFFFF, payload);
                result.ServerFrames.Add(frame);
                await OnServerFrameAsync(result, frame, responseDecoder, responseBlocks, clientAcksSettings, stream, cts.Token);
            }
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            result.TimedOut = true;
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            result.ConnectionClosed = true;
        }
        return result;
    }

    private static async Task OnServerFrameAsync(H2Result result, H2Frame frame, HpackDecoder decoder, HeaderBlockAssembler blocks, bool clientAcksSettings, NetworkStream stream, CancellationToken cancellationToken)
    {
        if (frame.StreamId != 0)
        {
            GetStream(result, frame.StreamId).Frames.Add((frame.Type, frame.Flags));
        }
        switch (frame.Type)
        {
            case H2Frame.Settings when !frame.HasFlag(H2Frame.FlagAck) && !clientAcksSettings:
                await stream.WriteAsync(new H2Frame(H2Frame.Settings, H2Frame.FlagAck, 0, []).ToBytes(), cancellationToken);
                break;
            case H2Frame.Headers or H2Frame.Continuation:
                if (blocks.Add(frame) is { } block)
                {
                    var s = GetStream(result, frame.StreamId);
                    s.HeaderBlocks.Add(DecodeBlock(decoder, block));
                    if (blocks.LastEndStream)
                    {
                        s.Ended = true;
                    }
                }
                break;
            case H2Frame.Data:
                {
                    var s = GetStream(result, frame.StreamId);
                    s.Data.Write(Unpad(frame));
                    if (frame.HasFlag(H2Frame.FlagEndStream))
                    {
                        s.Ended = true;
                    }
                    break;
                }
            case H2Frame.RstStream:
                {
                    var s = GetStream(result, frame.StreamId);
                    s.RstStreamErrorCodes.Add(BinaryPrimitives.ReadUInt32BigEndian(frame.Payload));
                    s.Ended = true;
                    break;
                }
            case H2Frame.GoAway:
                {
                    int lastStreamId = BinaryPrimitives.ReadInt32BigEndian(frame.Payload) & 0x7FFFFFFF;
                    result.GoAway = (lastStreamId, BinaryPrimitives.ReadUInt32BigEndian(frame.Payload.AsSpan(4)));
                    // RFC 7540 Section 6.8: streams above the last stream id will never be processed.
                    foreach (var s in result.Streams.Values.Where(s => s.StreamId > lastStreamId))
                    {
                        s.Ended = true;
                    }
                    break;
                }
        }
    }

    private static bool AllEnded(H2Result result) => result.Streams.Values.All(s => s.Ended);

    private static H2StreamResult GetStream(H2Result result, int streamId)
    {
        if (!result.Streams.TryGetValue(streamId, out var stream))
        {
            stream = new H2StreamResult(streamId);
            result.Streams.Add(streamId, stream);
        }
        return stream;
    }

    private static byte[] Unpad(H2Frame frame)
    {
        if (!frame.HasFlag(H2Frame.FlagPadded))
        {
            return frame.Payload;
        }
        int pad = frame.Payload[0];
        return frame.Payload.AsSpan(1, frame.Payload.Length - 1 - pad).ToArray();
    }

    public static List<KeyValuePair<string, string>> DecodeBlock(HpackDecoder decoder, byte[] block)
    {
        var sink = new ListSink();
        decoder.Decode(block, ref sink);
        return sink.Headers;
    }

    private static async Task<bool> ReadExactlyOrEofAsync(Stream stream, byte[] buffer, CancellationToken cancellationToken)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = await stream.ReadAsync(buffer.AsMemory(read), cancellationToken);
            if (n == 0)
            {
                return false;
            }
            read += n;
        }
        return true;
    }

    private sealed class ListSink : IHpackHeaderSink
    {
        public List<KeyValuePair<string, string>> Headers { get; } = [];

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed)
            => Headers.Add(new(Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));
    }

    /// <summary>Joins HEADERS + CONTINUATION fragments (RFC 7540 Section 6.10), dropping padding and priority fields.</summary>
    internal sealed class HeaderBlockAssembler
    {
        private MemoryStream? _block;

        /// <summary>END_STREAM of the HEADERS frame that started the last completed block.</summary>
        public bool LastEndStream { get; private set; }

        private bool _endStream;

        /// <summary>Feeds a frame; returns the whole header block once END_HEADERS is seen, else null.</summary>
        public byte[]? Add(H2Frame frame)
        {
            ReadOnlySpan<byte> fragment;
            if (frame.Type == H2Frame.Headers)
            {
                fragment = frame.Payload;
                int pad = 0;
                if (frame.HasFlag(H2Frame.FlagPadded))
                {
                    pad = fragment[0];
                    fragment = fragment[1..];
                }
                if (frame.HasFlag(H2Frame.FlagPriority))
                {
                    fragment = fragment[5..];
                }
                fragment = fragment[..^pad];
                _block = new MemoryStream();
                _endStream = frame.HasFlag(H2Frame.FlagEndStream);
            }
            else if (frame.Type == H2Frame.Continuation && _block is not null)
            {
                fragment = frame.Payload;
            }
            else
            {
                return null;
            }
            _block.Write(fragment);
            if (!frame.HasFlag(H2Frame.FlagEndHeaders))
            {
                return null;
            }
            byte[] block = _block.ToArray();
            _block = null;
            LastEndStream = _endStream;
            return block;
        }
    }
}
