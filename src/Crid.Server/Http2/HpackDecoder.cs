using System.Buffers;

namespace Crid.Server.Http2;

/// <summary>Receives the header fields of a decoded header block, in order.</summary>
internal interface IHpackHeaderSink
{
    /// <summary>One header field. The spans are only valid during the call.</summary>
    /// <param name="neverIndexed">
    /// The field came as "literal never indexed" (RFC 7541 Section 6.2.3): an intermediary that
    /// re-encodes it must keep that representation.
    /// </param>
    void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed);
}

/// <summary>A header block that violates RFC 7541 (a COMPRESSION_ERROR in HTTP/2 terms, RFC 7540 Section 4.3).</summary>
internal sealed class HpackDecodingException(string message) : Exception(message);

/// <summary>
/// An HPACK decoder (RFC 7541): static and dynamic table, integer and string literals, Huffman,
/// and all four field representations plus dynamic table size updates.
/// </summary>
/// <remarks>
/// One instance holds the decoding context of one direction of one connection (RFC 7541 Section 2.2):
/// header blocks must be fed in the order they were sent, each one whole (HEADERS plus its
/// CONTINUATION fragments, RFC 7540 Section 4.3). Not thread-safe.
/// </remarks>
internal sealed class HpackDecoder : IDisposable
{
    /// <summary>RFC 7541 Section 4.1: each entry costs its name and value lengths plus 32.</summary>
    public const int EntryOverhead = 32;

    /// <summary>SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 7540 Section 6.5.2), also Kestrel's default.</summary>
    public const int DefaultMaxDynamicTableSize = 4096;

    private readonly int _maxDynamicTableSize;
    private readonly int _maxHeaderListSize;

    // The dynamic table as a ring: _entries[_oldest] is the oldest entry, the newest one is
    // _count - 1 entries further (RFC 7541 Section 2.3.2: new entries are added at the front,
    // eviction happens at the back). An entry costs at least 32 octets, so the ring never needs
    // more than maxSize / 32 slots.
    private readonly Entry[] _entries;
    private int _oldest;
    private int _count;
    private int _size;
    private int _limit;

    // Holds Huffman-decoded names and values while they are handed to the sink.
    private byte[] _scratch;

    /// <param name="maxDynamicTableSize">
    /// The SETTINGS_HEADER_TABLE_SIZE this endpoint advertised: the initial table size, and the most
    /// a dynamic table size update may ask for (RFC 7541 Section 4.2).
    /// </param>
    /// <param name="maxHeaderListSize">
    /// Upper bound, in RFC 7541 Section 4.1 octets, of one decoded header list. Indexed fields make
    /// a block expand (one octet can stand for a 4 KiB entry), so without a bound a small block
    /// could make us produce megabytes.
    /// </param>
    public HpackDecoder(int maxDynamicTableSize = DefaultMaxDynamicTableSize, int maxHeaderListSize = 256 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxDynamicTableSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxHeaderListSize);
        _maxDynamicTableSize = maxDynamicTableSize;
        _maxHeaderListSize = maxHeaderListSize;
        _limit = maxDynamicTableSize;
        _entries = new Entry[Math.Max(1, maxDynamicTableSize / EntryOverhead)];
        _scratch = ArrayPool<byte>.Shared.Rent(256);
    }

    /// <summary>Current dynamic table size in RFC 7541 Section 4.1 octets.</summary>
    public int DynamicTableSize => _size;

    /// <summary>Current maximum dynamic table size (changed by dynamic table size updates).</summary>
    public int DynamicTableLimit => _limit;

    /// <summary>Number of entries in the dynamic table.</summary>
    public int DynamicTableCount => _count;

    /// <summary>The dynamic table entry at <paramref name="position"/>: 0 is the newest (HPACK index 62).</summary>
    public (byte[] Name, byte[] Value) GetDynamicEntry(int position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(position, _count);
        Entry e = _entries[Slot(position)];
        return (e.Name, e.Value);
    }

    /// <summary>Decodes one complete header block, calling <paramref name="sink"/> for every field.</summary>
    /// <exception cref="HpackDecodingException">The block is malformed; the decoding context is then unusable (RFC 7540 Section 4.3).</exception>
    public void Decode<TSink>(ReadOnlySpan<byte> block, ref TSink sink)
        where TSink : IHpackHeaderSink
    {
        int pos = 0;
        long listSize = 0;
        bool fieldSeen = false;
        while (pos < block.Length)
        {
            byte b = block[pos];
            if ((b & 0x80) != 0)
            {
                // RFC 7541 Section 6.1: indexed header field, 7-bit prefix index.
                int index = ReadInteger(block, ref pos, 7);
                GetIndexed(index, out byte[] name, out byte[] value);
                listSize = CheckListSize(listSize, name.Length, value.Length);
                fieldSeen = true;
                sink.OnHeader(name, value, neverIndexed: false);
            }
            else if ((b & 0xC0) == 0x40)
            {
                // RFC 7541 Section 6.2.1: literal with incremental indexing, 6-bit prefix name index.
                int nameIndex = ReadInteger(block, ref pos, 6);
                byte[] name;
                if (nameIndex != 0)
                {
                    GetIndexed(nameIndex, out name, out _);
                }
                else
                {
                    name = ReadString(block, ref pos, scratchOffset: 0, out _).ToArray();
                }
                byte[] value = ReadString(block, ref pos, scratchOffset: 0, out _).ToArray();
                listSize = CheckListSize(listSize, name.Length, value.Length);
                fieldSeen = true;
                Insert(name, value);
                sink.OnHeader(name, value, neverIndexed: false);
            }
            else if ((b & 0xE0) == 0x20)
            {
                // RFC 7541 Section 6.3 / 4.2: dynamic table size update, 5-bit prefix. Only
                // allowed before the first field of a block, and never above the advertised maximum.
                if (fieldSeen)
                {
                    throw new HpackDecodingException("dynamic table size update after a header field (RFC 7541 Section 4.2)");
                }
                int newLimit = ReadInteger(block, ref pos, 5);
                if (newLimit > _maxDynamicTableSize)
                {
                    throw new HpackDecodingException($"dynamic table size update to {newLimit} exceeds the maximum {_maxDynamicTableSize} (RFC 7541 Section 6.3)");
                }
                _limit = newLimit;
                Evict(0);
            }
            else
            {
                // RFC 7541 Sections 6.2.2 (0000xxxx, without indexing) and 6.2.3 (0001xxxx, never
                // indexed): 4-bit prefix name index, no change to the table.
                bool neverIndexed = (b & 0x10) != 0;
                int nameIndex = ReadInteger(block, ref pos, 4);
                ReadOnlySpan<byte> name;
                bool nameInScratch = false;
                if (nameIndex != 0)
                {
                    GetIndexed(nameIndex, out byte[] indexedName, out _);
                    name = indexedName;
                }
                else
                {
                    name = ReadString(block, ref pos, scratchOffset: 0, out nameInScratch);
                }
                // A Huffman-decoded name lives in _scratch: decode the value behind it, then
                // re-slice the name, since _scratch may have been replaced by a bigger buffer.
                int nameLength = name.Length;
                ReadOnlySpan<byte> value = ReadString(block, ref pos, nameInScratch ? nameLength : 0, out _);
                if (nameInScratch)
                {
                    name = _scratch.AsSpan(0, nameLength);
                }
                listSize = CheckListSize(listSize, name.Length, value.Length);
                fieldSeen = true;
                sink.OnHeader(name, value, neverIndexed);
            }
        }
    }

    public void Dispose()
    {
        byte[] scratch = _scratch;
        _scratch = [];
        if (scratch.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private long CheckListSize(long listSize, int nameLength, int valueLength)
    {
        listSize += nameLength + valueLength + EntryOverhead;
        if (listSize > _maxHeaderListSize)
        {
            throw new HpackDecodingException($"decoded header list exceeds {_maxHeaderListSize} octets");
        }
        return listSize;
    }

    private void GetIndexed(int index, out byte[] name, out byte[] value)
    {
        // RFC 7541 Section 2.3.3: 1..61 static, 62.. dynamic (62 = newest); 0 is an error (Section 6.1).
        if (index <= 0)
        {
            throw new HpackDecodingException("index 0 (RFC 7541 Section 6.1)");
        }
        if (index <= HpackStaticTable.Count)
        {
            name = HpackStaticTable.GetName(index);
            value = HpackStaticTable.GetValue(index);
            return;
        }
        int position = index - HpackStaticTable.Count - 1;
        if (position >= _count)
        {
            throw new HpackDecodingException($"index {index} is beyond the dynamic table (RFC 7541 Section 2.3.3)");
        }
        Entry e = _entries[Slot(position)];
        name = e.Name;
        value = e.Value;
    }

    private int Slot(int position) => (_oldest + _count - 1 - position) % _entries.Length;

    private void Insert(byte[] name, byte[] value)
    {
        int entrySize = name.Length + value.Length + EntryOverhead;
        if (entrySize > _limit)
        {
            // RFC 7541 Section 4.4: an entry larger than the table empties it and is not added.
            Evict(_limit + 1);
            return;
        }
        Evict(entrySize);
        _entries[(_oldest + _count) % _entries.Length] = new Entry(name, value);
        _count++;
        _size += entrySize;
    }

    /// <summary>Evicts oldest entries until <paramref name="room"/> more octets fit under the limit (RFC 7541 Section 4.3/4.4).</summary>
    private void Evict(int room)
    {
        while (_count > 0 && _size + room > _limit)
        {
            Entry e = _entries[_oldest];
            _size -= e.Name.Length + e.Value.Length + EntryOverhead;
            _entries[_oldest] = default;
            _oldest = (_oldest + 1) % _entries.Length;
            _count--;
        }
    }

    /// <summary>
    /// Reads a string literal (RFC 7541 Section 5.2). A plain string is returned as a slice of the
    /// block; a Huffman one is decoded into _scratch at <paramref name="scratchOffset"/>, keeping
    /// _scratch[0..scratchOffset) even if the buffer has to grow.
    /// </summary>
    private ReadOnlySpan<byte> ReadString(ReadOnlySpan<byte> block, scoped ref int pos, int scratchOffset, out bool inScratch)
    {
        if (pos >= block.Length)
        {
            throw new HpackDecodingException("truncated string literal");
        }
        bool huffman = (block[pos] & 0x80) != 0;
        int length = ReadInteger(block, ref pos, 7);
        if (length > block.Length - pos)
        {
            throw new HpackDecodingException("string literal longer than the header block");
        }
        ReadOnlySpan<byte> raw = block.Slice(pos, length);
        pos += length;
        inScratch = huffman;
        if (!huffman)
        {
            return raw;
        }

        int needed = scratchOffset + Huffman.MaxDecodedLength(length);
        if (needed > _scratch.Length)
        {
            byte[] bigger = ArrayPool<byte>.Shared.Rent(needed);
            _scratch.AsSpan(0, scratchOffset).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_scratch);
            _scratch = bigger;
        }
        int written = Huffman.Decode(raw, _scratch.AsSpan(scratchOffset));
        return _scratch.AsSpan(scratchOffset, written);
    }

    /// <summary>Reads an integer with an N-bit prefix (RFC 7541 Section 5.1).</summary>
    internal static int ReadInteger(ReadOnlySpan<byte> block, ref int pos, int prefixBits)
    {
        if (pos >= block.Length)
        {
            throw new HpackDecodingException("truncated integer");
        }
        int max = (1 << prefixBits) - 1;
        int value = block[pos++] & max;
        if (value < max)
        {
            return value;
        }
        // Continuation octets, 7 bits each, least significant first. Four of them already reach
        // 2^28, far above any length or index a 16 MiB frame can carry: more is an attack.
        for (int shift = 0; shift <= 21; shift += 7)
        {
            if (pos >= block.Length)
            {
                throw new HpackDecodingException("truncated integer");
            }
            byte b = block[pos++];
            value += (b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }
        throw new HpackDecodingException("integer too large (RFC 7541 Section 5.1)");
    }

    private readonly record struct Entry(byte[] Name, byte[] Value);
}
