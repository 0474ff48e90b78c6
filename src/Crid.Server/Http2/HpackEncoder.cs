using System.Buffers;

namespace Crid.Server.Http2;

/// <summary>
/// Writes a header block that uses no HPACK state at all: every field is a literal "without
/// indexing" (RFC 7541 Section 6.2.2) or "never indexed" (Section 6.2.3), naming a static table
/// entry when one has the name, with no Huffman coding.
/// </summary>
/// <remarks>
/// Stateless on purpose: the peer decoder (Kestrel) then never gets a dynamic table entry from us,
/// so the client's own dynamic table size updates and indexing decisions need not be mirrored.
/// The block is built in a pooled buffer reused from block to block.
/// </remarks>
internal sealed class HpackEncoder : IHpackHeaderSink, IDisposable
{
    private byte[] _buffer;
    private int _length;

    public HpackEncoder(int initialCapacity = 512)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(initialCapacity);
    }

    /// <summary>The block written since the last <see cref="Reset"/>.</summary>
    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _length);

    public int WrittenCount => _length;

    public void Reset() => _length = 0;

    void IHpackHeaderSink.OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed)
        => WriteLiteral(name, value, neverIndexed);

    /// <summary>Appends one field as a literal without indexing (or never indexed).</summary>
    public void WriteLiteral(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed = false)
    {
        int nameIndex = HpackStaticTable.FindName(name);
        // Worst case: 1 + 5 octets of name index or (6 + name), 6 + value.
        Span<byte> dst = Reserve(18 + name.Length + value.Length);
        byte representation = neverIndexed ? (byte)0x10 : (byte)0x00;
        int n;
        if (nameIndex != 0)
        {
            n = WriteInteger(dst, nameIndex, 4, representation);
        }
        else
        {
            dst[0] = representation;
            n = 1;
            n += WriteInteger(dst[n..], name.Length, 7, 0x00);
            name.CopyTo(dst[n..]);
            n += name.Length;
        }
        n += WriteInteger(dst[n..], value.Length, 7, 0x00);
        value.CopyTo(dst[n..]);
        n += value.Length;
        _length += n;
    }

    /// <summary>Writes an integer with an N-bit prefix (RFC 7541 Section 5.1); <paramref name="flags"/> fills the bits above the prefix.</summary>
    /// <returns>Octets written.</returns>
    public static int WriteInteger(Span<byte> destination, int value, int prefixBits, byte flags)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        int max = (1 << prefixBits) - 1;
        if (value < max)
        {
            destination[0] = (byte)(flags | value);
            return 1;
        }
        destination[0] = (byte)(flags | max);
        value -= max;
        int n = 1;
        while (value >= 0x80)
        {
            destination[n++] = (byte)(0x80 | (value & 0x7F));
            value >>= 7;
        }
        destination[n++] = (byte)value;
        return n;
    }

    public void Dispose()
    {
        byte[] buffer = _buffer;
        _buffer = [];
        _length = 0;
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private Span<byte> Reserve(int count)
    {
        if (_buffer.Length - _length < count)
        {
            byte[] bigger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + count));
            _buffer.AsSpan(0, _length).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }
        return _buffer.AsSpan(_length);
    }
}
