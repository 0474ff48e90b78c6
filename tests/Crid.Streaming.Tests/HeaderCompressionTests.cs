using System.Buffers.Binary;
using Crid.Streaming.Spdy;
using Crid.Streaming.Tests.Client;

namespace Crid.Streaming.Tests;

/// <summary>SPDY/3 header blocks: the dictionary, and both directions of the compression across many blocks.</summary>
public sealed class HeaderCompressionTests
{
    private static KeyValuePair<string, string> H(string name, string value) => new(name, value);

    [Fact]
    public void The_dictionary_is_the_drafts_1423_bytes()
    {
        var bytes = SpdyDictionary.Bytes;
        Assert.Equal(1423, bytes.Length);
        Assert.Equal(bytes, ClientZlib.Dictionary());
        // Adler-32 computed here, not taken from the server: the id a peer's zlib header names.
        uint a = 1, b = 0;
        foreach (var x in bytes)
        {
            a = (a + x) % 65521;
            b = (b + a) % 65521;
        }
        Assert.Equal(0xe3c6a7c2u, (b << 16) | a);
        Assert.Equal(0xe3c6a7c2u, SpdyDictionary.Adler32);
    }

    [Fact]
    public void Blocks_the_client_deflates_with_the_dictionary_inflate_one_after_another()
    {
        var client = new ClientZlib();
        var server = new HeaderInflater(64 * 1024);
        for (int i = 0; i < 50; i++)
        {
            var headers = new[] { H("streamtype", i % 2 == 0 ? "data" : "error"), H("port", (8000 + i).ToString()), H("requestid", i.ToString()) };
            var parsed = SpdyHeaders.Decode(server.Inflate(client.Deflate(ClientZlib.EncodeBlock(headers))));
            Assert.Equal(headers, parsed.Pairs);
            Assert.Equal((8000 + i).ToString(), parsed.Get("Port"));
        }
    }

    [Fact]
    public void Blocks_the_server_deflates_inflate_one_after_another_each_whole_in_its_frame()
    {
        using var server = new HeaderDeflater();
        var client = new ClientZlib();
        for (int i = 0; i < 50; i++)
        {
            var headers = i % 3 == 0 ? [] : new[] { H("streamtype", "stdout"), H("n", i.ToString()) };
            var block = server.Deflate(new SpdyHeaders(headers).Encode());
            Assert.Equal(headers, client.Inflate(block));
        }
    }

    [Fact]
    public void A_block_that_claims_more_than_it_holds_is_a_protocol_error()
    {
        var block = ClientZlib.EncodeBlock([H("a", "b")]);
        BinaryPrimitives.WriteInt32BigEndian(block, 1000);
        Assert.Throws<SpdyProtocolException>(() => SpdyHeaders.Decode(block));
        var shortValue = ClientZlib.EncodeBlock([H("a", "b")]);
        BinaryPrimitives.WriteInt32BigEndian(shortValue.AsSpan(9), 99);
        Assert.Throws<SpdyProtocolException>(() => SpdyHeaders.Decode(shortValue));
        Assert.Throws<SpdyProtocolException>(() => SpdyHeaders.Decode(ClientZlib.EncodeBlock([H("", "b")])));
        Assert.Throws<SpdyProtocolException>(() => SpdyHeaders.Decode([.. ClientZlib.EncodeBlock([H("a", "b")]), 0]));
    }

    [Fact]
    public void Corrupt_or_foreign_compression_and_bombs_are_protocol_errors()
    {
        Assert.Throws<SpdyProtocolException>(() => new HeaderInflater(1024).Inflate([0x78, 0xBB, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x02]));
        Assert.Throws<SpdyProtocolException>(() => new HeaderInflater(1024).Inflate([0x12, 0x34, 0x56]));
        // A megabyte of zeros compresses to a few hundred bytes; the limit stops it, not memory.
        var bomb = new ClientZlib().Deflate(new byte[1024 * 1024]);
        Assert.True(bomb.Length < 8192);
        Assert.Throws<SpdyProtocolException>(() => new HeaderInflater(64 * 1024).Inflate(bomb));
    }
}
