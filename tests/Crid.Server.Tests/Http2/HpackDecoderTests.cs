using System.Text;
using Crid.Server.Http2;
using Crid.Tests.Http2;

namespace Crid.Server.Tests.Http2;

/// <summary>RFC 7541 Appendix C examples, decoded with one decoder per connection as the RFC runs them.</summary>
public sealed class HpackDecoderTests
{
    private static readonly (string, string)[] Request1 = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
    private static readonly (string, string)[] Request2 = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"), ("cache-control", "no-cache")];
    private static readonly (string, string)[] Request3 = [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"), ("custom-key", "custom-value")];

    [Fact]
    public void C2_1_LiteralWithIndexing()
    {
        using var decoder = new HpackDecoder();
        AssertDecodes(decoder, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572", [("custom-key", "custom-header")]);
        AssertTable(decoder, 55, ("custom-key", "custom-header"));
    }

    [Fact]
    public void C2_2_LiteralWithoutIndexing()
    {
        using var decoder = new HpackDecoder();
        AssertDecodes(decoder, "040c 2f73 616d 706c 652f 7061 7468", [(":path", "/sample/path")]);
        AssertTable(decoder, 0);
    }

    [Fact]
    public void C2_3_LiteralNeverIndexed_IsReportedAsSuch()
    {
        using var decoder = new HpackDecoder();
        var sink = new RecordingSink();
        decoder.Decode(Hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), ref sink);
        Assert.Equal([("password", "secret", true)], sink.Fields);
        AssertTable(decoder, 0);
    }

    [Fact]
    public void C2_4_Indexed()
    {
        using var decoder = new HpackDecoder();
        AssertDecodes(decoder, "82", [(":method", "GET")]);
        AssertTable(decoder, 0);
    }

    [Fact]
    public void C3_RequestsWithoutHuffman()
    {
        using var decoder = new HpackDecoder();
        AssertDecodes(decoder, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", Request1);
        AssertTable(decoder, 57, (":authority", "www.example.com"));
        AssertDecodes(decoder, "8286 84be 5808 6e6f 2d63 6163 6865", Request2);
        AssertTable(decoder, 110, ("cache-control", "no-cache"), (":authority", "www.example.com"));
        AssertDecodes(decoder, "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", Request3);
        AssertTable(decoder, 164, ("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com"));
    }

    [Fact]
    public void C4_RequestsWithHuffman()
    {
        using var decoder = new HpackDecoder();
        AssertDecodes(decoder, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", Request1);
        AssertTable(decoder, 57, (":authority", "www.example.com"));
        AssertDecodes(decoder, "8286 84be 5886 a8eb 1064 9cbf", Request2);
        AssertTable(decoder, 110, ("cache-control", "no-cache"), (":authority", "www.example.com"));
        AssertDecodes(decoder, "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", Request3);
        AssertTable(decoder, 164, ("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com"));
    }

    private const string Date21 = "Mon, 21 Oct 2013 20:13:21 GMT";
    private const string Date22 = "Mon, 21 Oct 2013 20:13:22 GMT";
    private const string Location = "https://www.example.com";
    private const string Cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

    [Fact]
    public void C5_ResponsesWithoutHuffman_EvictWithATableOf256()
    {
        using var decoder = new HpackDecoder(maxDynamicTableSize: 256);
        AssertDecodes(decoder,
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            [(":status", "302"), ("cache-control", "private"), ("date", Date21), ("location", Location)]);
        AssertTable(decoder, 222, ("location", Location), ("date", Date21), ("cache-control", "private"), (":status", "302"));
        AssertDecodes(decoder, "4803 3330 37c1 c0bf",
            [(":status", "307"), ("cache-control", "private"), ("date", Date21), ("location", Location)]);
        AssertTable(decoder, 222, (":status", "307"), ("location", Location), ("date", Date21), ("cache-control", "private"));
        AssertDecodes(decoder,
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
            [(":status", "200"), ("cache-control", "private"), ("date", Date22), ("location", Location), ("content-encoding", "gzip"), ("set-cookie", Cookie)]);
        AssertTable(decoder, 215, ("set-cookie", Cookie), ("content-encoding", "gzip"), ("date", Date22));
    }

    [Fact]
    public void C6_ResponsesWithHuffman_EvictWithATableOf256()
    {
        using var decoder = new HpackDecoder(maxDynamicTableSize: 256);
        AssertDecodes(decoder,
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            [(":status", "302"), ("cache-control", "private"), ("date", Date21), ("location", Location)]);
        AssertTable(decoder, 222, ("location", Location), ("date", Date21), ("cache-control", "private"), (":status", "302"));
        AssertDecodes(decoder, "4883 640e ffc1 c0bf",
            [(":status", "307"), ("cache-control", "private"), ("date", Date21), ("location", Location)]);
        AssertTable(decoder, 222, (":status", "307"), ("location", Location), ("date", Date21), ("cache-control", "private"));
        AssertDecodes(decoder,
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
            [(":status", "200"), ("cache-control", "private"), ("date", Date22), ("location", Location), ("content-encoding", "gzip"), ("set-cookie", Cookie)]);
        AssertTable(decoder, 215, ("set-cookie", Cookie), ("content-encoding", "gzip"), ("date", Date22));
    }

    [Fact]
    public void SizeUpdate_EvictsAndBoundsLaterInsertions()
    {
        using var decoder = new HpackDecoder();
        AssertDecodes(decoder, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", Request1);
        // 0x20 = size update to 0 (empties the table), then 0x3f 0x1a = 31 + 26 = 57, room for exactly one entry.
        AssertDecodes(decoder, "20 3f1a 82", [(":method", "GET")]);
        AssertTable(decoder, 0);
        Assert.Equal(57, decoder.DynamicTableLimit);
        AssertDecodes(decoder, "4003 6162 6303 6465 66 4003 6768 6903 6a6b 6c", [("abc", "def"), ("ghi", "jkl")]);
        AssertTable(decoder, 38, ("ghi", "jkl"));
    }

    [Fact]
    public void EntryLargerThanTheTable_EmptiesItAndIsNotAdded()
    {
        using var decoder = new HpackDecoder(maxDynamicTableSize: 64);
        AssertDecodes(decoder, "4003 6162 6303 6465 66", [("abc", "def")]);
        string big = new('x', 40);
        AssertDecodes(decoder, "4003 6162 63 28" + Convert.ToHexString(Encoding.ASCII.GetBytes(big)), [("abc", big)]);
        AssertTable(decoder, 0);
    }

    [Theory]
    [InlineData("80", "index 0")]
    [InlineData("be", "dynamic index with an empty table")]
    [InlineData("ff80808080808001", "integer overflow")]
    [InlineData("ff", "truncated integer")]
    [InlineData("4003 6162", "string longer than the block")]
    [InlineData("3fe220", "size update above the 4096 maximum")]
    [InlineData("82 20", "size update after a field")]
    [InlineData("0083 ffffff 00", "Huffman EOS / padding longer than 7 bits")]
    [InlineData("0081 00 00", "Huffman padding not all ones")]
    public void MalformedBlocks_Throw(string hex, string why)
    {
        using var decoder = new HpackDecoder();
        var sink = new RecordingSink();
        Assert.True(Throws(decoder, Hex(hex), ref sink), why);
    }

    [Fact]
    public void HuffmanNameAndValueBiggerThanTheScratchBuffer()
    {
        // Forces the decoder's scratch buffer to grow between the name and the value.
        string name = new('n', 300);
        string value = new('v', 5000);
        byte[] block = new TestHpackEncoder(huffman: true, TestHpackEncoder.Indexing.None).Encode([new(name, value)]);
        using var decoder = new HpackDecoder();
        AssertDecodes(decoder, Convert.ToHexString(block), [(name, value)]);
    }

    private static bool Throws(HpackDecoder decoder, byte[] block, ref RecordingSink sink)
    {
        try
        {
            decoder.Decode(block, ref sink);
            return false;
        }
        catch (HpackDecodingException)
        {
            return true;
        }
    }

    internal static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", ""));

    private static void AssertDecodes(HpackDecoder decoder, string hex, (string Name, string Value)[] expected)
    {
        var sink = new RecordingSink();
        decoder.Decode(Hex(hex), ref sink);
        Assert.Equal(expected, sink.Fields.Select(f => (f.Name, f.Value)).ToArray());
    }

    private static void AssertTable(HpackDecoder decoder, int size, params (string Name, string Value)[] newestFirst)
    {
        Assert.Equal(size, decoder.DynamicTableSize);
        var actual = Enumerable.Range(0, decoder.DynamicTableCount)
            .Select(i => decoder.GetDynamicEntry(i))
            .Select(e => (Encoding.Latin1.GetString(e.Name), Encoding.Latin1.GetString(e.Value)))
            .ToArray();
        Assert.Equal(newestFirst, actual);
    }

    private struct RecordingSink() : IHpackHeaderSink
    {
        public List<(string Name, string Value, bool NeverIndexed)> Fields { get; } = [];

        public readonly void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed)
            => Fields.Add((Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value), neverIndexed));
    }
}
