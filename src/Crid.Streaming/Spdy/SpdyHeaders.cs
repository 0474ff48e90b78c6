using System.Buffers.Binary;
using System.Text;

namespace Crid.Streaming.Spdy;

/// <summary>
/// A SPDY/3 name/value header block (section 2.6.10): a 32-bit count, then each name and value
/// with a 32-bit length. Names travel lower-case; several values of one name are joined by NUL.
/// </summary>
internal sealed class SpdyHeaders
{
    public static readonly SpdyHeaders Empty = new([]);

    private readonly KeyValuePair<string, string>[] _pairs;

    public SpdyHeaders(IEnumerable<KeyValuePair<string, string>> pairs) => _pairs = pairs.ToArray();

    public IReadOnlyList<KeyValuePair<string, string>> Pairs => _pairs;

    /// <summary>The first value of <paramref name="name"/> (names compare without case, as Go's http.Header does), or null.</summary>
    public string? Get(string name)
    {
        foreach (var (key, value) in _pairs)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
            {
                int nul = value.IndexOf('\0');
                return nul < 0 ? value : value[..nul];
            }
        }
        return null;
    }

    public byte[] Encode()
    {
        int length = 4;
        foreach (var (name, value) in _pairs)
            length += 8 + Encoding.UTF8.GetByteCount(name) + Encoding.UTF8.GetByteCount(value);
        var block = new byte[length];
        var span = block.AsSpan();
        BinaryPrimitives.WriteUInt32BigEndian(span, (uint)_pairs.Length);
        int at = 4;
        foreach (var (name, value) in _pairs)
        {
            at += WriteString(span[at..], name.ToLowerInvariant());
            at += WriteString(span[at..], value);
        }
        return block;
    }

    private static int WriteString(Span<byte> into, string text)
    {
        int n = Encoding.UTF8.GetBytes(text, into[4..]);
        BinaryPrimitives.WriteUInt32BigEndian(into, (uint)n);
        return 4 + n;
    }

    /// <summary>Parses an inflated block; a block that does not add up is a protocol error.</summary>
    public static SpdyHeaders Decode(ReadOnlySpan<byte> block)
    {
        if (block.Length < 4)
            throw new SpdyProtocolException("header block shorter than its count");
        uint count = BinaryPrimitives.ReadUInt32BigEndian(block);
        // Each pair takes at least 8 bytes: a count beyond that is a lie, not a reason to allocate.
        if (count > (uint)(block.Length - 4) / 8)
            throw new SpdyProtocolException($"header block claims {count} pairs in {block.Length} bytes");
        var pairs = new List<KeyValuePair<string, string>>((int)count);
        int at = 4;
        for (uint i = 0; i < count; i++)
        {
            string name = ReadString(block, ref at, "name");
            if (name.Length == 0)
                throw new SpdyProtocolException("empty header name");
            string value = ReadString(block, ref at, "value");
            pairs.Add(new(name.ToLowerInvariant(), value));
        }
        if (at != block.Length)
            throw new SpdyProtocolException($"{block.Length - at} bytes after the last header");
        return new SpdyHeaders(pairs);
    }

    private static string ReadString(ReadOnlySpan<byte> block, ref int at, string what)
    {
        if (block.Length - at < 4)
            throw new SpdyProtocolException($"header {what} length cut short");
        uint length = BinaryPrimitives.ReadUInt32BigEndian(block[at..]);
        at += 4;
        if (length > (uint)(block.Length - at))
            throw new SpdyProtocolException($"header {what} of {length} bytes overruns the block");
        var text = Encoding.UTF8.GetString(block.Slice(at, (int)length));
        at += (int)length;
        return text;
    }

    public override string ToString() => string.Join(", ", _pairs.Select(p => $"{p.Key}={p.Value.Replace('\0', '|')}"));
}

/// <summary>A violation that ends the whole session (GOAWAY with PROTOCOL_ERROR): the peer cannot be trusted to continue.</summary>
internal sealed class SpdyProtocolException(string message) : Exception(message);
