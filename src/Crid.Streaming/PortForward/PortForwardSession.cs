using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Crid.Linux;
using Crid.Streaming.Spdy;
using Microsoft.Extensions.Logging;

namespace Crid.Streaming.PortForward;

/// <summary>
/// Port-forward over one SPDY connection, as kubelet's portforward server does it: for each forwarded
/// TCP connection the client opens an error stream and a data stream with the same requestID and port
/// headers; once both are there we connect to that port on the pod's loopback and copy both ways, with
/// half-close. A failure is written on the error stream as text. Any number of pairs at once.
/// </summary>
internal sealed class PortForwardSession
{
    public const string Protocol = "portforward.k8s.io";

    // After the pod's side ended, how long the client may keep sending before its side is cut
    // (containerd waits 1 s too): clients wait for the error stream's end before they close.
    private static readonly TimeSpan HalfCloseGrace = TimeSpan.FromSeconds(1);

    private readonly SpdyConnection _connection;
    private readonly PortForwardStreamRequest _request;
    private readonly IPodNetworks _networks;
    private readonly TimeSpan _creationTimeout;
    private readonly ILogger _log;
    private readonly Dictionary<string, Pair> _pairs = new(StringComparer.Ordinal);
    private readonly List<Task> _running = [];
    private readonly Lock _lock = new();

    public PortForwardSession(SpdyConnection connection, PortForwardStreamRequest request, IPodNetworks networks, TimeSpan creationTimeout, ILogger log)
    {
        _connection = connection;
        _request = request;
        _networks = networks;
        _creationTimeout = creationTimeout;
        _log = log;
    }

    public async Task<string> RunAsync(CancellationToken stopping)
    {
        using var gone = CancellationTokenSource.CreateLinkedTokenSource(_connection.Lost, stopping);
        int forwarded = 0;
        try
        {
            while (await _connection.AcceptStreamAsync(gone.Token).ConfigureAwait(false) is { } stream)
            {
                if (await AddAsync(stream, gone.Token).ConfigureAwait(false) is { } pair)
                {
                    forwarded++;
                    Track(ForwardAsync(pair, gone.Token));
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The client or the server is gone; the forwards below see the same token.
        }
        Task[] running;
        lock (_lock)
            running = _running.ToArray();
        await Task.WhenAll(running).ConfigureAwait(false);
        return $"{forwarded} connections forwarded";
    }

    private void Track(Task task)
    {
        lock (_lock)
        {
            _running.RemoveAll(t => t.IsCompleted);
            _running.Add(task);
        }
    }

    /// <returns>The pair this stream completed, or null.</returns>
    private async Task<Pair?> AddAsync(SpdyStream stream, CancellationToken gone)
    {
        var portText = stream.Headers.Get("port");
        var type = stream.Headers.Get("streamtype");
        if (!ushort.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port == 0
            || type is not ("data" or "error"))
        {
            // As kubelet: a stream without a valid port and stream type is refused.
            StreamingLog.ForwardFailed(_log, 0, _request.SandboxId, "-", $"refused stream {stream.Id}: port \"{portText}\", streamType \"{type}\"");
            await stream.ResetAsync(RstStatus.RefusedStream).ConfigureAwait(false);
            return null;
        }
        // Clients before requestID paired streams by id: error n, data n+2 (kubelet's fallback).
        var requestId = stream.Headers.Get("requestid")
            ?? (type == "error" ? stream.Id : stream.Id - 2).ToString(CultureInfo.InvariantCulture);
        await stream.ReplyAsync().ConfigureAwait(false);

        Pair pair;
        bool created = false;
        string? duplicate = null;
        lock (_lock)
        {
            if (!_pairs.TryGetValue(requestId, out pair!))
            {
                pair = new Pair(requestId, port);
                _pairs[requestId] = pair;
                created = true;
            }
            if (type == "data" ? pair.Data is not null : pair.Error is not null)
                duplicate = type;
            else if (type == "data")
                pair.Data = stream;
            else
                pair.Error = stream;
            if (duplicate is null && pair.Complete)
                _pairs.Remove(requestId);
        }
        if (created)
            Track(ExpireAsync(pair, gone));
        if (duplicate is not null)
        {
            await ReportAsync(pair, $"error processing stream for request {requestId}: {duplicate} stream already assigned", end: false).ConfigureAwait(false);
            await stream.ResetAsync(RstStatus.StreamInUse).ConfigureAwait(false);
            return null;
        }
        if (pair.Complete)
        {
            pair.Completed.TrySetResult();
            return pair;
        }
        return null;
    }

    /// <summary>A pair still missing a stream after the creation timeout is given up, as kubelet does.</summary>
    private async Task ExpireAsync(Pair pair, CancellationToken gone)
    {
        try
        {
            await pair.Completed.Task.WaitAsync(_creationTimeout, gone).ConfigureAwait(false);
            return;
        }
        catch (TimeoutException)
        {
        }
        catch (OperationCanceledException)
        {
            return;
        }
        lock (_lock)
        {
            if (pair.Complete)
                return;
            _pairs.Remove(pair.RequestId);
        }
        StreamingLog.ForwardFailed(_log, pair.Port, _request.SandboxId, pair.RequestId, "timed out waiting for the data and error streams");
        await ReportAsync(pair, $"timed out waiting for streams of request {pair.RequestId}", end: true).ConfigureAwait(false);
        if (pair.Data is { } data)
            await data.ResetAsync(RstStatus.Cancel).ConfigureAwait(false);
    }

    private static async Task ReportAsync(Pair pair, string message, bool end)
    {
        if (pair.Error is not { } error)
            return;
        try
        {
            await error.WriteAsync(Encoding.UTF8.GetBytes(message)).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The client is gone.
        }
        if (end)
            await error.CloseWriteAsync().ConfigureAwait(false);
    }

    private async Task ForwardAsync(Pair pair, CancellationToken gone)
    {
        var data = pair.Data!;
        var error = pair.Error!;
        // The client never writes on the error stream (it closes its half at once).
        error.DiscardIncoming();
        Socket socket;
        try
        {
            var (_, netns) = _networks.Find(_request.SandboxId);
            socket = await PodDialer.ConnectAsync(netns, pair.Port, _creationTimeout, gone).ConfigureAwait(false);
        }
        // A pod network namespace that cannot be entered (its pin is gone) is a SyscallException, an IOException.
        catch (Exception e) when (e is Crid.Core.Errors.CriException or IOException or SocketException)
        {
            StreamingLog.ForwardFailed(_log, pair.Port, _request.SandboxId, pair.RequestId, e.Message);
            await ReportAsync(pair, $"error forwarding port {pair.Port} to pod {_request.SandboxId}, uid : {e.Message}", end: true).ConfigureAwait(false);
            await data.CloseWriteAsync().ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException)
        {
            return;
        }

        long toPod = 0, fromPod = 0;
        using (socket)
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(gone, data.ResetToken))
        {
            var upstream = Task.Run(async () => toPod = await ClientToPodAsync(data, socket, stop.Token).ConfigureAwait(false));
            var downstream = Task.Run(async () => fromPod = await PodToClientAsync(socket, data, stop.Token).ConfigureAwait(false));
            var first = await Task.WhenAny(upstream, downstream).ConfigureAwait(false);
            if (first == downstream)
            {
                // The pod is done talking: give the client a moment to finish its side, then cut it.
                await Task.WhenAny(upstream, Task.Delay(HalfCloseGrace, gone)).ConfigureAwait(false);
            }
            else
            {
                // The client is done talking: the pod answers for as long as it likes.
                await downstream.ConfigureAwait(false);
            }
            await stop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(upstream, downstream).ConfigureAwait(false);
        }
        await data.CloseWriteAsync().ConfigureAwait(false);
        await error.CloseWriteAsync().ConfigureAwait(false);
        // Whatever the client still sends for this pair is dropped, not buffered.
        data.DiscardIncoming();
        StreamingLog.ForwardDone(_log, pair.Port, _request.SandboxId, pair.RequestId, toPod, fromPod);
    }

    private static async Task<long> ClientToPodAsync(SpdyStream data, Socket socket, CancellationToken stop)
    {
        var buffer = new byte[32 * 1024];
        long total = 0;
        try
        {
            while (true)
            {
                int n = await data.ReadAsync(buffer, stop).ConfigureAwait(false);
                if (n == 0)
                    break;
                await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, stop).ConfigureAwait(false);
                total += n;
            }
            // The client closed its side: so do we toward the pod, which may still answer.
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or IOException)
        {
            // Cut: the other direction or the session decides what happens next.
        }
        return total;
    }

    private static async Task<long> PodToClientAsync(Socket socket, SpdyStream data, CancellationToken stop)
    {
        var buffer = new byte[32 * 1024];
        long total = 0;
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None, stop).ConfigureAwait(false);
                if (n == 0)
                    break;
                await data.WriteAsync(buffer.AsMemory(0, n), stop).ConfigureAwait(false);
                total += n;
            }
            await data.CloseWriteAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or IOException)
        {
            // The pod reset the connection or the client went away.
        }
        return total;
    }

    private sealed class Pair(string requestId, int port)
    {
        public string RequestId { get; } = requestId;

        public int Port { get; } = port;

        public SpdyStream? Data { get; set; }

        public SpdyStream? Error { get; set; }

        public bool Complete => Data is not null && Error is not null;

        public TaskCompletionSource Completed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
