using System.Threading.Channels;

namespace Crid.Streaming.Containers;

/// <summary>Copying loops between a client's streams and a container's, ending quietly when either side goes.</summary>
internal static class Pumps
{
    /// <summary>Copies until the source ends; a null target drains the source (output nobody asked for).</summary>
    public static async Task CopyAsync(Stream? from, Stream? to, CancellationToken cancel)
    {
        if (from is null)
            return;
        var buffer = new byte[32 * 1024];
        try
        {
            int n;
            while ((n = await from.ReadAsync(buffer, cancel).ConfigureAwait(false)) > 0)
            {
                if (to is not null)
                    await to.WriteAsync(buffer.AsMemory(0, n), cancel).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // A pty reads EIO once its command is gone; the client may have left.
        }
    }

    /// <summary>Copies the client's input, then closes the target: the command sees the end of its input.</summary>
    public static async Task CopyThenCloseAsync(Stream from, Stream to, CancellationToken cancel)
    {
        await CopyAsync(from, to, cancel).ConfigureAwait(false);
        if (!cancel.IsCancellationRequested)
        {
            try
            {
                await to.DisposeAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
                // The command had closed its stdin already.
            }
        }
    }

    public static async Task ForEachAsync<T>(ChannelReader<T> items, Action<T> apply, CancellationToken cancel)
    {
        try
        {
            await foreach (var item in items.ReadAllAsync(cancel).ConfigureAwait(false))
                apply(item);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
