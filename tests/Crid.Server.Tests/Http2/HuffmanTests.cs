using System.Text;
using Crid.Server.Http2;

namespace Crid.Server.Tests.Http2;

public sealed class HuffmanTests
{
    [Fact]
    public void EverySymbolRoundTrips()
    {
        // Checks the table data and the canonical-code assumption the decoder relies on.
        byte[] all = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        for (int i = 0; i < all.Length; i++)
        {
            AssertRoundTrip(all.AsSpan(i, 1).ToArray());
        }
        AssertRoundTrip(all);
        AssertRoundTrip(all.Reverse().ToArray());
    }

    [Fact]
    public void CodesArePrefixFree()
    {
        for (int a = 0; a <= Huffman.Eos; a++)
        {
            (uint codeA, int lenA) = Huffman.GetCode(a);
            for (int b = 0; b <= Huffman.Eos; b++)
            {
                (uint codeB, int lenB) = Huffman.GetCode(b);
                if (a != b && lenA <= lenB)
                {
                    Assert.NotEqual(codeA, codeB >> (lenB - lenA));
                }
            }
        }
    }

    [Theory]
    [InlineData("www.example.com", "f1e3c2e5f23a6ba0ab90f4ff")]   // RFC 7541 C.4.1
    [InlineData("no-cache", "a8eb10649cbf")]                      // RFC 7541 C.4.2
    [InlineData("custom-key", "25a849e95ba97d7f")]                // RFC 7541 C.4.3
    [InlineData("custom-value", "25a849e95bb8e8b4bf")]            // RFC 7541 C.4.3
    [InlineData("", "")]
    public void MatchesRfcExamples(string text, string hex)
    {
        byte[] raw = Encoding.ASCII.GetBytes(text);
        var encoded = new byte[Huffman.EncodedLength(raw)];
        Huffman.Encode(raw, encoded);
        Assert.Equal(hex, Convert.ToHexString(encoded).ToLowerInvariant());
        AssertRoundTrip(raw);
    }

    private static void AssertRoundTrip(byte[] raw)
    {
        var encoded = new byte[Huffman.EncodedLength(raw)];
        Assert.Equal(encoded.Length, Huffman.Encode(raw, encoded));
        var decoded = new byte[Huffman.MaxDecodedLength(encoded.Length)];
        int n = Huffman.Decode(encoded, decoded);
        Assert.Equal(raw, decoded.AsSpan(0, n).ToArray());
    }
}
