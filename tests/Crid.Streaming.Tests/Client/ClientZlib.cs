using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using ICSharpCode.SharpZipLib.Zip.Compression;

namespace Crid.Streaming.Tests.Client;

/// <summary>
/// The test client's header compression, the other way round from the server's: it deflates with a
/// preset dictionary (as Go's spdystream does) and inflates with .NET's ZLibStream, reading each
/// block exactly as far as its counts say (as Go's framer does), so a block the server does not
/// end with a sync flush shows up as a stall or a short read here.
/// </summary>
internal sealed class ClientZlib
{
    private readonly Deflater _deflater = new(Deflater.BEST_COMPRESSION, noZlibHeaderOrFooter: false);
    private readonly FeedStream _feed = new();
    private readonly ZLibStream _inflate;

    public ClientZlib(bool useDictionary = true)
    {
        if (useDictionary)
            _deflater.SetDictionary(Dictionary());
        _inflate = new ZLibStream(_feed, CompressionMode.Decompress);
    }

    /// <summary>The SPDY/3 dictionary, built here from the draft's text on its own.</summary>
    public static byte[] Dictionary()
    {
        string[] names =
        [
            "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
            "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
            "content-base", "content-encoding", "content-language", "content-length", "content-location",
            "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
            "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
            "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
            "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
            "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
            "public", "set-cookie", "keep-alive", "origin",
        ];
        var ms = new MemoryStream();
        foreach (var n in names)
        {
            var b = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(b, n.Length);
            ms.Write(b);
            ms.Write(Encoding.ASCII.GetBytes(n));
        }
        ms.Write(Encoding.ASCII.GetBytes(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
            + "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
            + "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
            + "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
            + "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
            + "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."));
        return ms.ToArray();
    }

    public static byte[] EncodeBlock(IEnumerable<KeyValuePair<string, string>> headers)
    {
        var list = headers.ToList();
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        WriteBe(w, list.Count);
        foreach (var (k, v) in list)
        {
            var kb = Encoding.UTF8.GetBytes(k);
            var vb = Encoding.UTF8.GetBytes(v);
            WriteBe(w, kb.Length);
            w.Write(kb);
            WriteBe(w, vb.Length);
            w.Write(vb);
        }
        return ms.ToArray();
    }

    private static void WriteBe(BinaryWriter w, int value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b, value);
        w.Write(b);
    }

    /// <summary>Compresses one block, ending it with a flush so the server can read it whole.</summary>
    public byte[] Deflate(byte[] block)
    {
        _deflater.SetInput(block);
        _deflater.Flush();
        var output = new MemoryStream();
        var buffer = new byte[4096];
        while (true)
        {
            int n = _deflater.Deflate(buffer);
            if (n == 0)
                break;
            output.Write(buffer, 0, n);
        }
        return output.ToArray();
    }

    /// <summary>Inflates one frame's block: exactly the pairs it counts, failing if the frame's bytes do not hold them.</summary>
    public List<KeyValuePair<string, string>> Inflate(byte[] compressed)
    {
        _feed.Add(compressed);
        var count = ReadInt();
        var pairs = new List<KeyValuePair<string, string>>();
        for (int i = 0; i < count; i++)
        {
            var name = Encoding.UTF8.GetString(ReadExactly(ReadInt()));
            var value = Encoding.UTF8.GetString(ReadExactly(ReadInt()));
            pairs.Add(new(name, value));
        }
        return pairs;
    }

    private int ReadInt() => BinaryPrimitives.ReadInt32BigEndian(ReadExactly(4));

    private byte[] ReadExactly(int n)
    {
        var buffer = new byte[n];
        int at = 0;
        while (at < n)
        {
            int got = _inflate.Read(buffer, at, n - at);
            if (got == 0)
                throw new InvalidDataException($"header block ended after {at} of {n} bytes: the frame did not hold a whole block");
            at += got;
        }
        return buffer;
    }

    /// <summary>What ZLibStream reads from: the frames' bytes as they come; 0 when none are waiting.</summary>
    private sealed class FeedStream : Stream
    {
        private readonly Queue<byte> _bytes = new();

        public void Add(byte[] data)
        {
            foreach (var b in data)
                _bytes.Enqueue(b);
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = 0;
            while (n < count && _bytes.Count > 0)
                buffer[offset + n++] = _bytes.Dequeue();
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
