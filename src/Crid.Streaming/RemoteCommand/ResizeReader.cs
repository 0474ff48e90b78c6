using System.Buffers;
using System.Text.Json;
using System.Threading.Channels;
using Crid.Streaming.Spdy;

namespace Crid.Streaming.RemoteCommand;

/// <summary>
/// The resize stream: JSON objects {"Width":W,"Height":H} one after another (Go's json.Encoder, a
/// newline after each). Only the newest size matters, so a slow reader sees the latest ones.
/// </summary>
internal static class ResizeReader
{
    private const int MaxPending = 4096;

    public static ChannelReader<TerminalSize> Start(SpdyStream stream, CancellationToken cancel, out Task pump)
    {
        var channel = Channel.CreateBounded<TerminalSize>(new BoundedChannelOptions(8)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
            SingleWriter = true,
        });
        pump = PumpAsync(stream, channel.Writer, cancel);
        return channel.Reader;
    }

    private static async Task PumpAsync(SpdyStream stream, ChannelWriter<TerminalSize> sizes, CancellationToken cancel)
    {
        var pending = new ArrayBufferWriter<byte>(256);
        var chunk = new byte[1024];
        try
        {
            while (true)
            {
                int n = await stream.ReadAsync(chunk, cancel).ConfigureAwait(false);
                if (n == 0)
                    return;
                pending.Write(chunk.AsSpan(0, n));
                int used = Parse(pending.WrittenSpan, sizes, out bool broken);
                if (broken)
                    return;
                var rest = pending.WrittenSpan[used..].ToArray();
                if (rest.Length > MaxPending)
                    return;
                pending.ResetWrittenCount();
                pending.Write(rest);
            }
        }
        catch (OperationCanceledException)
        {
            // The session is over.
        }
        finally
        {
            sizes.TryComplete();
        }
    }

    /// <summary>Takes every complete object; like kubelet, stops at the first that is not a size.</summary>
    internal static int Parse(ReadOnlySpan<byte> text, ChannelWriter<TerminalSize> sizes, out bool broken)
    {
        broken = false;
        int used = 0;
        while (true)
        {
            var rest = text[used..];
            int start = 0;
            while (start < rest.Length && rest[start] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t')
                start++;
            if (start == rest.Length)
                return used + start;
            var reader = new Utf8JsonReader(rest[start..], isFinalBlock: false, default);
            try
            {
                if (!reader.Read())
                    return used;
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    broken = true;
                    return used;
                }
                if (!reader.TrySkip())
                    return used;
            }
            catch (JsonException)
            {
                broken = true;
                return used;
            }
            int length = (int)reader.BytesConsumed;
            var size = ToSize(rest.Slice(start, length));
            if (size is null)
            {
                broken = true;
                return used;
            }
            sizes.TryWrite(size.Value);
            used += start + length;
        }
    }

    private static TerminalSize? ToSize(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            reader.Read();
            ushort width = 0, height = 0;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                // Go's decoder matches field names without case; its encoder writes Width and Height.
                bool isWidth = reader.ValueTextEquals("Width") || reader.ValueTextEquals("width");
                bool isHeight = reader.ValueTextEquals("Height") || reader.ValueTextEquals("height");
                reader.Read();
                if (isWidth || isHeight)
                {
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetUInt16(out var value))
                        return null;
                    if (isWidth)
                        width = value;
                    else
                        height = value;
                }
                else
                {
                    reader.Skip();
                }
            }
            return new TerminalSize(width, height);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
