using System.Net.Sockets;
using Crid.Core.Containers;
using Crid.Linux;

namespace Crid.Streaming.Containers;

/// <summary>
/// Attach for an <see cref="IContainerStreams"/> implementation, through the container's monitor as
/// cri-o 1.26 does it (internal/oci/runtime_oci.go AttachContainer): conmon's SOCK_SEQPACKET attach
/// socket, where each packet from conmon starts with one byte naming its stream (2 stdout, 3 stderr)
/// and what we send is the container's stdin, and its ctl fifo, where "1 ROWS COLS\n" resizes the
/// terminal.
/// </summary>
public static class ConmonAttach
{
    private const byte Stdout = 2, Stderr = 3;

    // conmon's STDIO_BUF_SIZE, plus the stream byte.
    private const int PacketSize = 8192 + 1;

    /// <summary>
    /// Attaches until the container's output ends (it exited), or the client detaches: the client
    /// closing its stdin detaches unless the container was created with stdin_once or a tty (then its
    /// stdin is closed and the attach lasts until the output ends, as with cri-o). Cancelled (the
    /// client is gone), it detaches; the container keeps running either way.
    /// </summary>
    /// <param name="stdinOnce">The container's CRI <c>stdin_once</c>.</param>
    public static async Task RunAsync(ContainerEndpoints endpoints, ContainerIo io, bool stdinOnce, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(io);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(endpoints.AttachSocket), cancel).ConfigureAwait(false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var resizes = io.Resizes is { } sizes
            ? Pumps.ForEachAsync(sizes, size => Fifo.TryWrite(endpoints.ControlFifo, $"1 {size.Height} {size.Width}\n"), stop.Token)
            : Task.CompletedTask;
        var output = ReceiveAsync(socket, io, stop.Token);
        var input = io.Stdin is { } stdin ? SendAsync(stdin, socket, stop.Token) : Task.Delay(Timeout.Infinite, stop.Token);
        try
        {
            var first = await Task.WhenAny(output, input).ConfigureAwait(false);
            // A clean end of stdin detaches a plain container at once; otherwise (stdin_once or a tty:
            // conmon closed its stdin; or the socket broke) the output says when it is over.
            bool detach = first == input && input.IsCompletedSuccessfully && !stdinOnce && !io.Tty;
            if (first == input && !detach)
                await output.ConfigureAwait(false);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(output, input, resizes).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
        }
    }

    private static async Task ReceiveAsync(Socket socket, ContainerIo io, CancellationToken stop)
    {
        var packet = new byte[PacketSize];
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(packet, SocketFlags.None, stop).ConfigureAwait(false);
                if (n == 0)
                    return;
                var target = packet[0] switch
                {
                    Stdout => io.Stdout,
                    Stderr => io.Stderr,
                    _ => null,
                };
                if (target is not null && n > 1)
                    await target.WriteAsync(packet.AsMemory(1, n - 1), stop).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The client or the monitor went away.
        }
    }

    private static async Task SendAsync(Stream stdin, Socket socket, CancellationToken stop)
    {
        var buffer = new byte[PacketSize - 1];
        int n;
        while ((n = await stdin.ReadAsync(buffer, stop).ConfigureAwait(false)) > 0)
            await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, stop).ConfigureAwait(false);
        // The end of the client's input: conmon closes the container's stdin (unless --leave-stdin-open).
        socket.Shutdown(SocketShutdown.Send);
    }
}
