using System.Buffers;
using System.IO.Compression;
using ICSharpCode.SharpZipLib;
using ICSharpCode.SharpZipLib.Zip.Compression;

namespace Crid.Streaming.Spdy;

/// <summary>
/// The peer's header blocks: one zlib stream per connection and direction, each block ending at a
/// sync flush, the stream starting from <see cref="SpdyDictionary"/> (section 2.6.10.1). SharpZipLib's
/// Inflater, because it can be handed that dictionary when the stream's header asks for it.
/// </summary>
internal sealed class HeaderInflater
{
    private readonly Inflater _inflater = new(noHeader: false);
    private readonly int _maxBlock;

    public HeaderInflater(int maxBlock) => _maxBlock = maxBlock;

    /// <summary>Inflates one frame's compressed block; a corrupt stream or an oversized block ends the session.</summary>
    public byte[] Inflate(ReadOnlySpan<byte> compressed)
    {
        // The Inflater keeps the array it is given until it has consumed it, which it has when this returns.
        byte[] input = ArrayPool<byte>.Shared.Rent(Math.Max(compressed.Length, 1));
        byte[] chunk = ArrayPool<byte>.Shared.Rent(4096);
        var output = new ArrayBufferWriter<byte>(256);
        try
        {
            compressed.CopyTo(input);
            _inflater.SetInput(input, 0, compressed.Length);
            while (true)
            {
                int n = _inflater.Inflate(chunk);
                if (n > 0)
                {
                    if (output.WrittenCount + n > _maxBlock)
                        throw new SpdyProtocolException($"a header block inflates to more than {_maxBlock} bytes");
                    output.Write(chunk.AsSpan(0, n));
                    continue;
                }
                if (_inflater.IsNeedingDictionary)
                {
                    if ((uint)_inflater.Adler != SpdyDictionary.Adler32)
                        throw new SpdyProtocolException($"header compression names dictionary 0x{(uint)_inflater.Adler:x8}, not SPDY/3's");
                    _inflater.SetDictionary(SpdyDictionary.Bytes);
                    continue;
                }
                if (_inflater.IsFinished)
                    throw new SpdyProtocolException("the peer ended its header compression stream");
                // Needing input: the frame's bytes are used up, and with them the block.
                break;
            }
            if (_inflater.RemainingInput != 0)
                throw new SpdyProtocolException("header block has bytes after its end");
            return output.WrittenSpan.ToArray();
        }
        catch (Exception e) when (e is SharpZipBaseException or IndexOutOfRangeException or InvalidOperationException or ArgumentException)
        {
            // Whatever the inflater makes of hostile bytes, it is the peer's fault and ends the session.
            throw new SpdyProtocolException("corrupt header compression: " + e.Message);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(input);
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }
}

/// <summary>
/// Our header blocks, one zlib stream per connection, each block ended by a sync flush so the peer can
/// read it whole. No dictionary: the stream's header then says so, and every zlib reader accepts it.
/// Callers serialise (the connection's write lock): the stream's state is shared by every block.
/// </summary>
internal sealed class HeaderDeflater : IDisposable
{
    private readonly MemoryStream _sink = new();
    private readonly ZLibStream _zlib;

    public HeaderDeflater() => _zlib = new ZLibStream(_sink, CompressionLevel.Fastest, leaveOpen: true);

    public byte[] Deflate(ReadOnlySpan<byte> block)
    {
        _sink.SetLength(0);
        _zlib.Write(block);
        // DeflateStream.Flush is a Z_SYNC_FLUSH: everything so far, ending on a byte boundary.
        _zlib.Flush();
        return _sink.ToArray();
    }

    public void Dispose()
    {
        _zlib.Dispose();
        _sink.Dispose();
    }
}
