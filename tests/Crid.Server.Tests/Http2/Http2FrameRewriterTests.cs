using System.Buffers;
using System.Text;
using Crid.Server.Http2;
using Crid.Tests.Http2;

namespace Crid.Server.Tests.Http2;

/// <summary>The rewriter on its own, byte streams in and out, without Kestrel.</summary>
public sealed class Http2FrameRewriterTests
{
    public static TheoryData<string> Recordings() => TestPaths.RecordingNames();

    private static byte[] Recording(string name) => TestPaths.Recording(name);

    [Theory]
    [MemberData(nameof(Recordings))]
    public void RecordedConnection_OnlyAuthorityChanges(string name)
    {
        byte[] input = Recording(name);
        byte[] output = RewriteWhole(input);

        var inFrames = H2Client.ParseClientStream(input);
        var outFrames = H2Client.ParseClientStream(output);
        // Non-header frames: same frames, same order, same bytes.
        Assert.Equal(
            inFrames.Where(f => f.Type != H2Frame.Headers && f.Type != H2Frame.Continuation).Select(f => Convert.ToHexString(f.ToBytes())),
            outFrames.Where(f => f.Type != H2Frame.Headers && f.Type != H2Frame.Continuation).Select(f => Convert.ToHexString(f.ToBytes())));
        // Frame order (types and streams) unchanged, since each block fits in one frame.
        Assert.Equal(inFrames.Select(f => (f.Type, f.StreamId)), outFrames.Select(f => (f.Type, f.StreamId)));
        Assert.Equal(inFrames.Select(f => f.Flags), outFrames.Select(f => f.Flags));

        // Header blocks: same fields, except the socket path authority, now localhost; and the
        // output decodes with a fresh decoder that never gets a dynamic table entry (as Kestrel's).
        var before = RecordedConnection.RequestBlocks(input);
        var after = new List<(int, List<KeyValuePair<string, string>>)>();
        using var kestrelSide = new HpackDecoder();
        var assembler = new H2Client.HeaderBlockAssembler();
        foreach (var frame in outFrames)
        {
            if (assembler.Add(frame) is { } block)
            {
                after.Add((frame.StreamId, H2Client.DecodeBlock(kestrelSide, block)));
                Assert.Equal(0, kestrelSide.DynamicTableCount);
            }
        }
        Assert.Equal(before.Count, after.Count);
        Assert.True(before.Count >= 2);
        for (int i = 0; i < before.Count; i++)
        {
            var authority = before[i].Headers.Single(h => h.Key == ":authority");
            Assert.StartsWith("/", authority.Value); // a socket path: what this is all about
            Assert.Equal(RecordedConnection.WithAuthority(before[i].Headers, "localhost"), after[i].Item2);
        }
    }

    [Theory]
    [MemberData(nameof(Recordings))]
    public void AnyChunking_GivesTheSameOutput(string name)
    {
        byte[] input = Recording(name);
        byte[] expected = RewriteWhole(input);

        // Every split into two reads, then one byte per read.
        for (int split = 0; split <= input.Length; split++)
        {
            Assert.Equal(expected, RewriteChunked(input, [split, input.Length - split]));
        }
        Assert.Equal(expected, RewriteChunked(input, Enumerable.Repeat(1, input.Length).ToArray()));
    }

    [Fact]
    public void MultiSegmentSequence_IsHandled()
    {
        byte[] input = Recording("crictl-1.26-runp-default.c2s");
        byte[] expected = RewriteWhole(input);
        using var rewriter = new Http2FrameRewriter();
        var output = new ArrayBufferWriter<byte>();
        var sequence = Segments.Of(input, 7);
        SequencePosition consumed = rewriter.Process(sequence, output);
        Assert.Equal(sequence.End, consumed);
        Assert.Equal(expected, output.WrittenSpan.ToArray());
    }

    [Fact]
    public void LargeBlock_IsSplitIntoContinuationFrames()
    {
        // Huffman-coded 'a' is 5 bits: a client block of ~13 KB fits one frame, but our
        // Huffman-free output (~21 KB) exceeds the 16384-octet frame size.
        var headers = new List<KeyValuePair<string, string>>
        {
            new(":method", "POST"), new(":scheme", "http"), new(":path", "/x"), new(":authority", "/run/x.sock"),
            new("x-a", new string('a', 7000)), new("x-b", new string('a', 7000)), new("x-c", new string('a', 7000)),
        };
        byte[] block = new TestHpackEncoder(huffman: true, TestHpackEncoder.Indexing.None).Encode(headers);
        Assert.True(block.Length < Http2FrameRewriter.DefaultMaxFrameSize);
        byte[] input = H2Client.Serialize(RecordedConnection.SingleFrame(1, endStream: true, block));

        var frames = H2Client.ParseClientStream(RewriteWhole(input));
        Assert.Equal([H2Frame.Headers, H2Frame.Continuation], frames.Select(f => f.Type));
        Assert.Equal(H2Frame.FlagEndStream, frames[0].Flags);
        Assert.Equal(H2Frame.FlagEndHeaders, frames[1].Flags);
        Assert.Equal(Http2FrameRewriter.DefaultMaxFrameSize, frames[0].Payload.Length);
        using var decoder = new HpackDecoder();
        var decoded = H2Client.DecodeBlock(decoder, [.. frames[0].Payload, .. frames[1].Payload]);
        Assert.Equal(RecordedConnection.WithAuthority(headers, "localhost"), decoded);
    }

    [Fact]
    public void NeverIndexedFields_StayNeverIndexed()
    {
        var headers = new List<KeyValuePair<string, string>> { new(":authority", ""), new("authorization", "secret") };
        byte[] block = new TestHpackEncoder(huffman: true, TestHpackEncoder.Indexing.Never).Encode(headers);
        byte[] output = RewriteWhole(H2Client.Serialize(RecordedConnection.SingleFrame(1, endStream: true, block)));
        byte[] rewritten = H2Client.ParseClientStream(output)[0].Payload;
        // 0x11 = never indexed, name :authority (static 1); 0x1f 0x08 = never indexed, name authorization (static 23).
        Assert.Equal("1109" + Convert.ToHexString("localhost"u8) + "1F0806" + Convert.ToHexString("secret"u8), Convert.ToHexString(rewritten));
    }

    [Fact]
    public void NotHttp2_PassesThroughUntouched()
    {
        byte[] input = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        using var rewriter = new Http2FrameRewriter();
        var output = new ArrayBufferWriter<byte>();
        rewriter.Process(new ReadOnlySequence<byte>(input), output);
        Assert.True(rewriter.IsTransparent);
        Assert.Equal(input, output.WrittenSpan.ToArray());
    }

    public static TheoryData<string, string> MalformedStreams() => new()
    {
        // frame header: length(3) type flags stream(4)
        { "000001 09 04 00000001 82", "CONTINUATION without HEADERS" },
        { "000001 01 00 00000001 82" + "000000 04 00 00000000", "SETTINGS inside a header block" },
        { "000001 01 00 00000001 82" + "000001 09 04 00000003 82", "CONTINUATION of another stream" },
        { "000001 01 04 00000000 82", "HEADERS on stream 0" },
        { "000002 01 0c 00000001 0282", "padding longer than the payload" },
        { "000006 01 24 00000001 0000000110 82", "stream depending on itself" },
        { "000001 01 04 00000001 80", "HPACK index 0" },
        { "000001 01 04 00000001 c0", "HPACK dynamic index beyond the table" },
        { "000004 05 04 00000001 00000002", "PUSH_PROMISE from a client" },
    };

    [Theory]
    [MemberData(nameof(MalformedStreams))]
    public void MalformedInput_Throws(string framesHex, string why)
    {
        byte[] input = [.. H2Client.Preface, .. HpackDecoderTests.Hex(framesHex)];
        using var rewriter = new Http2FrameRewriter();
        var ex = Record.Exception(() => rewriter.Process(new ReadOnlySequence<byte>(input), new ArrayBufferWriter<byte>()));
        Assert.True(ex is Http2RewriteException or HpackDecodingException, $"{why}: {ex?.GetType().Name ?? "no exception"}");
    }

    [Fact]
    public void DataFrames_AreStreamedNotBuffered()
    {
        // A DATA frame announced as 100000 octets: whatever part has arrived is passed on at once.
        byte[] head = [.. H2Client.Preface, .. HpackDecoderTests.Hex("0186a0 00 00 00000001")];
        using var rewriter = new Http2FrameRewriter();
        var output = new ArrayBufferWriter<byte>();
        byte[] partial = [.. head, .. new byte[1000]];
        Assert.Equal(partial.Length, new ReadOnlySequence<byte>(partial).Slice(0, rewriter.Process(new ReadOnlySequence<byte>(partial), output)).Length);
        Assert.Equal(partial, output.WrittenSpan.ToArray());
    }

    [Fact]
    public void SteadyState_RewritesHeaderBlocksWithoutAllocating()
    {
        // The adapter sits on every call's hot path: once the client's dynamic table is filled,
        // a block of indexed fields and Huffman literals must be rewritten with no allocation.
        byte[] recorded = Recording("crictl-1.26-version.c2s");
        using var rewriter = new Http2FrameRewriter();
        var output = new ArrayBufferWriter<byte>(1 << 20);
        rewriter.Process(new ReadOnlySequence<byte>(recorded), output);

        byte[] literals = new TestHpackEncoder(huffman: true, TestHpackEncoder.Indexing.None)
            .Encode([new(":path", "/runtime.v1.RuntimeService/Version"), new("grpc-timeout", "1999990u"), new(":authority", "/run/crid/crid.sock")]);
        byte[] block = [0x83, 0x86, 0xc4, 0xc3, 0xc2, 0xc1, 0xc0, 0xbf, .. literals];
        byte[] frame = new H2Frame(H2Frame.Headers, H2Frame.FlagEndHeaders | H2Frame.FlagEndStream, 5, block).ToBytes();
        var sequence = new ReadOnlySequence<byte>(frame);

        for (int i = 0; i < 100; i++)
        {
            output.ResetWrittenCount();
            rewriter.Process(sequence, output);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            output.ResetWrittenCount();
            rewriter.Process(sequence, output);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1024, $"{allocated} bytes allocated for 1000 header blocks");

        var rewritten = H2Client.ParseFrames(output.WrittenSpan);
        using var decoder = new HpackDecoder();
        var headers = H2Client.DecodeBlock(decoder, Assert.Single(rewritten).Payload);
        // Two :authority fields here (one indexed from the recorded table, one literal): both rewritten.
        Assert.Equal(["localhost", "localhost"], headers.Where(h => h.Key == ":authority").Select(h => h.Value));
    }

    private static byte[] RewriteWhole(byte[] input)
    {
        using var rewriter = new Http2FrameRewriter();
        var output = new ArrayBufferWriter<byte>();
        var sequence = new ReadOnlySequence<byte>(input);
        Assert.Equal(sequence.End, rewriter.Process(sequence, output));
        return output.WrittenSpan.ToArray();
    }

    /// <summary>Feeds the input in reads of the given sizes, keeping unconsumed bytes as a pipe would.</summary>
    private static byte[] RewriteChunked(byte[] input, int[] reads)
    {
        using var rewriter = new Http2FrameRewriter();
        var output = new ArrayBufferWriter<byte>();
        byte[] pending = [];
        int offset = 0;
        foreach (int n in reads)
        {
            pending = [.. pending, .. input.AsSpan(offset, n)];
            offset += n;
            var sequence = new ReadOnlySequence<byte>(pending);
            long consumed = sequence.Slice(0, rewriter.Process(sequence, output)).Length;
            pending = pending[(int)consumed..];
        }
        Assert.Empty(pending);
        return output.WrittenSpan.ToArray();
    }

    private sealed class Segments : ReadOnlySequenceSegment<byte>
    {
        private Segments(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        /// <summary>A sequence of <paramref name="size"/>-octet segments, so frames straddle segment boundaries.</summary>
        public static ReadOnlySequence<byte> Of(byte[] bytes, int size)
        {
            var first = new Segments(bytes.AsMemory(0, Math.Min(size, bytes.Length)), 0);
            var last = first;
            for (int offset = size; offset < bytes.Length; offset += size)
            {
                var next = new Segments(bytes.AsMemory(offset, Math.Min(size, bytes.Length - offset)), offset);
                last.Next = next;
                last = next;
            }
            return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
        }
    }
}
