using System.Text;
using Crid.Server.Http2;

namespace Crid.Tests.Http2;

/// <summary>
/// A client-side HPACK encoder for building test variants: unlike the product's stateless
/// <see cref="HpackEncoder"/>, it can use the dynamic table (full-match indexed fields and
/// incremental indexing), Huffman coding and size updates, like grpc-go does.
/// </summary>
internal sealed class TestHpackEncoder(bool huffman = true, TestHpackEncoder.Indexing indexing = TestHpackEncoder.Indexing.Incremental)
{
    internal enum Indexing
    {
        /// <summary>Indexed when in a table, else literal with incremental indexing (RFC 7541 Section 6.2.1).</summary>
        Incremental,
        /// <summary>Literal without indexing (RFC 7541 Section 6.2.2).</summary>
        None,
        /// <summary>Literal never indexed (RFC 7541 Section 6.2.3).</summary>
        Never,
    }

    private readonly List<(string Name, string Value)> _dynamic = [];
    private int _size;
    private int _limit = HpackDecoder.DefaultMaxDynamicTableSize;

    /// <summary>Encodes one header block; <paramref name="sizeUpdates"/> go first (RFC 7541 Section 4.2).</summary>
    public byte[] Encode(IEnumerable<KeyValuePair<string, string>> headers, params int[] sizeUpdates)
    {
        var output = new MemoryStream();
        foreach (int size in sizeUpdates)
        {
            WriteInteger(output, size, 5, 0x20);
            _limit = size;
            Evict(0);
        }
        foreach (var (name, value) in headers)
        {
            int full = Find(name, value, fullMatch: true);
            if (indexing == Indexing.Incremental && full != 0)
            {
                WriteInteger(output, full, 7, 0x80);
                continue;
            }
            int nameIndex = Find(name, value, fullMatch: false);
            (int prefix, byte flags) = indexing switch
            {
                Indexing.Incremental => (6, (byte)0x40),
                Indexing.None => (4, (byte)0x00),
                _ => (4, (byte)0x10),
            };
            WriteInteger(output, nameIndex, prefix, flags);
            if (nameIndex == 0)
            {
                WriteString(output, name);
            }
            WriteString(output, value);
            if (indexing == Indexing.Incremental)
            {
                Insert(name, value);
            }
        }
        return output.ToArray();
    }

    private int Find(string name, string value, bool fullMatch)
    {
        byte[] n = Encoding.Latin1.GetBytes(name);
        byte[] v = Encoding.Latin1.GetBytes(value);
        for (int i = 1; i <= HpackStaticTable.Count; i++)
        {
            if (HpackStaticTable.GetName(i).AsSpan().SequenceEqual(n) && (!fullMatch || HpackStaticTable.GetValue(i).AsSpan().SequenceEqual(v)))
            {
                return i;
            }
        }
        for (int i = 0; i < _dynamic.Count; i++)
        {
            if (_dynamic[i].Name == name && (!fullMatch || _dynamic[i].Value == value))
            {
                return HpackStaticTable.Count + 1 + i;
            }
        }
        return 0;
    }

    private void Insert(string name, string value)
    {
        int size = name.Length + value.Length + 32;
        if (size > _limit)
        {
            _dynamic.Clear();
            _size = 0;
            return;
        }
        Evict(size);
        _dynamic.Insert(0, (name, value));
        _size += size;
    }

    private void Evict(int room)
    {
        while (_dynamic.Count > 0 && _size + room > _limit)
        {
            var last = _dynamic[^1];
            _size -= last.Name.Length + last.Value.Length + 32;
            _dynamic.RemoveAt(_dynamic.Count - 1);
        }
    }

    private void WriteString(MemoryStream output, string s)
    {
        byte[] raw = Encoding.Latin1.GetBytes(s);
        if (huffman)
        {
            var encoded = new byte[Huffman.EncodedLength(raw)];
            Huffman.Encode(raw, encoded);
            WriteInteger(output, encoded.Length, 7, 0x80);
            output.Write(encoded);
        }
        else
        {
            WriteInteger(output, raw.Length, 7, 0x00);
            output.Write(raw);
        }
    }

    private static void WriteInteger(MemoryStream output, int value, int prefix, byte flags)
    {
        Span<byte> buffer = stackalloc byte[8];
        int n = HpackEncoder.WriteInteger(buffer, value, prefix, flags);
        output.Write(buffer[..n]);
    }
}
