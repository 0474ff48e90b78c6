using System.Buffers.Binary;
using Crid.Server.Http2;

namespace Crid.Tests.Http2;

/// <summary>Builds variants of a recorded client connection by re-encoding and re-framing its header blocks.</summary>
internal static class RecordedConnection
{
    /// <summary>How one re-encoded header block is put into frames.</summary>
    internal delegate IEnumerable<H2Frame> Framing(int streamId, bool endStream, byte[] block);

    /// <summary>The request header blocks of a client stream, decoded, per stream in order.</summary>
    public static List<(int StreamId, List<KeyValuePair<string, string>> Headers)> RequestBlocks(byte[] clientBytes)
    {
        var blocks = new List<(int, List<KeyValuePair<string, string>>)>();
        using var decoder = new HpackDecoder();
        var assembler = new H2Client.HeaderBlockAssembler();
        foreach (var frame in H2Client.ParseClientStream(clientBytes))
        {
            if (assembler.Add(frame) is { } block)
            {
                blocks.Add((frame.StreamId, H2Client.DecodeBlock(decoder, block)));
            }
        }
        return blocks;
    }

    /// <summary>
    /// Re-encodes every header block of <paramref name="clientBytes"/> with <paramref name="encoder"/>
    /// after <paramref name="edit"/>, frames it with <paramref name="framing"/>, and keeps every
    /// other frame as it was.
    /// </summary>
    public static byte[] Rewrite(
        byte[] clientBytes,
        TestHpackEncoder encoder,
        Func<List<KeyValuePair<string, string>>, List<KeyValuePair<string, string>>>? edit = null,
        Framing? framing = null,
        Func<int, int[]>? sizeUpdates = null)
    {
        framing ??= SingleFrame;
        var output = new List<H2Frame>();
        using var decoder = new HpackDecoder();
        var assembler = new H2Client.HeaderBlockAssembler();
        int blockNumber = 0;
        foreach (var frame in H2Client.ParseClientStream(clientBytes))
        {
            if (frame.Type is not (H2Frame.Headers or H2Frame.Continuation))
            {
                output.Add(frame);
                continue;
            }
            if (assembler.Add(frame) is not { } block)
            {
                continue;
            }
            var headers = H2Client.DecodeBlock(decoder, block);
            headers = edit?.Invoke(headers) ?? headers;
            byte[] encoded = encoder.Encode(headers, sizeUpdates?.Invoke(blockNumber) ?? []);
            output.AddRange(framing(frame.StreamId, assembler.LastEndStream, encoded));
            blockNumber++;
        }
        return H2Client.Serialize(output);
    }

    public static List<KeyValuePair<string, string>> WithAuthority(List<KeyValuePair<string, string>> headers, string authority)
        => headers.Select(h => h.Key == ":authority" ? new KeyValuePair<string, string>(h.Key, authority) : h).ToList();

    public static IEnumerable<H2Frame> SingleFrame(int streamId, bool endStream, byte[] block)
    {
        yield return new H2Frame(H2Frame.Headers, (byte)(H2Frame.FlagEndHeaders | (endStream ? H2Frame.FlagEndStream : 0)), streamId, block);
    }

    /// <summary>HEADERS plus CONTINUATION frames, cutting the block into <paramref name="pieces"/> (mid-literal, usually).</summary>
    public static Framing Split(int pieces) => (streamId, endStream, block) =>
    {
        var frames = new List<H2Frame>();
        int size = Math.Max(1, (block.Length + pieces - 1) / pieces);
        for (int offset = 0; offset < block.Length || frames.Count == 0; offset += size)
        {
            byte[] fragment = block.AsSpan(offset, Math.Min(size, block.Length - offset)).ToArray();
            bool first = frames.Count == 0;
            bool last = offset + size >= block.Length;
            byte flags = (byte)((last ? H2Frame.FlagEndHeaders : 0) | (first && endStream ? H2Frame.FlagEndStream : 0));
            frames.Add(new H2Frame(first ? H2Frame.Headers : H2Frame.Continuation, flags, streamId, fragment));
        }
        return frames;
    };

    /// <summary>One HEADERS frame with padding and/or priority fields (RFC 7540 Section 6.2).</summary>
    public static Framing PaddedOrPrioritized(int padLength, bool priority) => (streamId, endStream, block) =>
    {
        var payload = new MemoryStream();
        byte flags = (byte)(H2Frame.FlagEndHeaders | (endStream ? H2Frame.FlagEndStream : 0));
        if (padLength >= 0)
        {
            flags |= H2Frame.FlagPadded;
            payload.WriteByte((byte)padLength);
        }
        if (priority)
        {
            flags |= H2Frame.FlagPriority;
            Span<byte> fields = stackalloc byte[5];
            BinaryPrimitives.WriteInt32BigEndian(fields, 0); // not exclusive, depends on stream 0
            fields[4] = 15; // weight 16
            payload.Write(fields);
        }
        payload.Write(block);
        payload.Write(new byte[Math.Max(0, padLength)]);
        return [new H2Frame(H2Frame.Headers, flags, streamId, payload.ToArray())];
    };
}
