using System.Text;

namespace Crid.Server.Http2;

/// <summary>The HPACK static table (RFC 7541 Section 2.3.1, contents in Appendix A). Index 1 is the first entry.</summary>
internal static class HpackStaticTable
{
    public const int Count = 61;

    // Kept as byte arrays so that the decoder can hand out spans (and reuse a static name
    // as a dynamic-table entry's name) without allocating.
    private static readonly byte[][] Names = new byte[Count + 1][];
    private static readonly byte[][] Values = new byte[Count + 1][];

    static HpackStaticTable()
    {
        // RFC 7541 Appendix A, in index order (1..61).
        string[] entries =
        [
            ":authority", "",
            ":method", "GET",
            ":method", "POST",
            ":path", "/",
            ":path", "/index.html",
            ":scheme", "http",
            ":scheme", "https",
            ":status", "200",
            ":status", "204",
            ":status", "206",
            ":status", "304",
            ":status", "400",
            ":status", "404",
            ":status", "500",
            "accept-charset", "",
            "accept-encoding", "gzip, deflate",
            "accept-language", "",
            "accept-ranges", "",
            "accept", "",
            "access-control-allow-origin", "",
            "age", "",
            "allow", "",
            "authorization", "",
            "cache-control", "",
            "content-disposition", "",
            "content-encoding", "",
            "content-language", "",
            "content-length", "",
            "content-location", "",
            "content-range", "",
            "content-type", "",
            "cookie", "",
            "date", "",
            "etag", "",
            "expect", "",
            "expires", "",
            "from", "",
            "host", "",
            "if-match", "",
            "if-modified-since", "",
            "if-none-match", "",
            "if-range", "",
            "if-unmodified-since", "",
            "last-modified", "",
            "link", "",
            "location", "",
            "max-forwards", "",
            "proxy-authenticate", "",
            "proxy-authorization", "",
            "range", "",
            "referer", "",
            "refresh", "",
            "retry-after", "",
            "server", "",
            "set-cookie", "",
            "strict-transport-security", "",
            "transfer-encoding", "",
            "user-agent", "",
            "vary", "",
            "via", "",
            "www-authenticate", "",
        ];
        Names[0] = [];
        Values[0] = [];
        for (int i = 1; i <= Count; i++)
        {
            Names[i] = Encoding.ASCII.GetBytes(entries[(i - 1) * 2]);
            Values[i] = Encoding.ASCII.GetBytes(entries[(i - 1) * 2 + 1]);
        }
    }

    /// <summary>Index of <c>:authority</c> (RFC 7541 Appendix A).</summary>
    public const int AuthorityIndex = 1;

    public static byte[] GetName(int index) => Names[index];

    public static byte[] GetValue(int index) => Values[index];

    /// <summary>The lowest static index whose name is <paramref name="name"/>, or 0 if none.</summary>
    public static int FindName(ReadOnlySpan<byte> name)
    {
        // 61 entries, most rejected on length alone: cheaper than hashing for the short header
        // lists gRPC sends.
        for (int i = 1; i <= Count; i++)
        {
            byte[] candidate = Names[i];
            if (candidate.Length == name.Length && name.SequenceEqual(candidate))
            {
                return i;
            }
        }
        return 0;
    }
}
