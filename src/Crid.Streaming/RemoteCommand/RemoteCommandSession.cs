using Crid.Streaming.Spdy;
using Microsoft.Extensions.Logging;

namespace Crid.Streaming.RemoteCommand;

/// <summary>
/// Exec and attach over one SPDY connection, as kubelet's remotecommand server does it: the client
/// opens one stream per channel (error, then stdin, stdout, stderr, and resize with a tty from v3),
/// each marked by its streamType header; once all have come the call runs; then stdout and stderr
/// end, the error stream carries the outcome and ends, and the connection closes.
/// </summary>
internal sealed class RemoteCommandSession
{
    public const string V4 = "v4.channel.k8s.io";
    public const string V3 = "v3.channel.k8s.io";
    public const string V2 = "v2.channel.k8s.io";
    public const string V1 = "channel.k8s.io";

    /// <summary>Best first, as the handshake prefers the client's order among these.</summary>
    public static readonly string[] Protocols = [V4, V3, V2, V1];

    private readonly SpdyConnection _connection;
    private readonly StreamingRequest _request;
    private readonly string _protocol;
    private readonly IContainerStreams _containers;
    private readonly TimeSpan _creationTimeout;
    private readonly ILogger _log;

    public RemoteCommandSession(SpdyConnection connection, StreamingRequest request, string protocol,
        IContainerStreams containers, TimeSpan creationTimeout, ILogger log)
    {
        if (request is not (ExecStreamRequest or AttachStreamRequest))
            throw new ArgumentException("exec or attach only", nameof(request));
        _connection = connection;
        _request = request;
        _protocol = protocol;
        _containers = containers;
        _creationTimeout = creationTimeout;
        _log = log;
    }

    private bool Stdin => _request is ExecStreamRequest e ? e.Stdin : ((AttachStreamRequest)_request).Stdin;
    private bool Stdout => _request is ExecStreamRequest e ? e.Stdout : ((AttachStreamRequest)_request).Stdout;
    private bool Stderr => _request is ExecStreamRequest e ? e.Stderr : ((AttachStreamRequest)_request).Stderr;
    private bool Tty => _request is ExecStreamRequest e ? e.Tty : ((AttachStreamRequest)_request).Tty;
    private string ContainerId => _request is ExecStreamRequest e ? e.ContainerId : ((AttachStreamRequest)_request).ContainerId;

    /// <returns>A word on how it ended, for the log.</returns>
    public async Task<string> RunAsync(CancellationToken stopping)
    {
        var wanted = new HashSet<string>(StringComparer.Ordinal) { "error" };
        if (Stdin)
            wanted.Add("stdin");
        if (Stdout)
            wanted.Add("stdout");
        if (Stderr)
            wanted.Add("stderr");
        if (Tty && _protocol is V4 or V3)
            wanted.Add("resize");

        using var gone = CancellationTokenSource.CreateLinkedTokenSource(_connection.Lost, stopping);
        var streams = await CollectStreamsAsync(wanted, gone.Token).ConfigureAwait(false);
        if (streams is null)
            return _connection.Lost.IsCancellationRequested ? "the client went away before opening its streams" : "the client did not open its streams in time";

        // Anything the client opens from now on is refused.
        var refuser = RefuseMoreAsync(gone.Token);
        var error = streams["error"];
        error.DiscardIncoming();
        streams.GetValueOrDefault("stdout")?.DiscardIncoming();
        streams.GetValueOrDefault("stderr")?.DiscardIncoming();
        Task resizePump = Task.CompletedTask;
        var io = new ContainerIo
        {
            Stdin = streams.TryGetValue("stdin", out var stdin) ? SpdyIoStream.Reading(stdin) : null,
            Stdout = streams.TryGetValue("stdout", out var stdout) ? SpdyIoStream.Writing(stdout) : null,
            Stderr = streams.TryGetValue("stderr", out var stderr) ? SpdyIoStream.Writing(stderr) : null,
            Tty = Tty,
            Resizes = streams.TryGetValue("resize", out var resize) ? ResizeReader.Start(resize, gone.Token, out resizePump) : null,
        };

        CommandStatus status;
        try
        {
            if (_request is ExecStreamRequest exec)
            {
                status = CommandStatus.Exited(await _containers.ExecAsync(exec.ContainerId, exec.Command, io, gone.Token).ConfigureAwait(false));
            }
            else
            {
                await _containers.AttachAsync(ContainerId, io, gone.Token).ConfigureAwait(false);
                status = CommandStatus.Succeeded;
            }
        }
        catch (Exception e) when (gone.IsCancellationRequested)
        {
            StreamingLog.SessionEnded(_log, _request.Kind, ContainerId, "client gone: " + e.Message);
            return "the client went away";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            StreamingLog.ContainerCallFailed(_log, e, _request.Kind, ContainerId);
            status = CommandStatus.Failed(_request is ExecStreamRequest ? "error executing command in container" : "error attaching to container", e.Message);
        }
        if (status.ExitCode is < 0 or > 255)
            status = CommandStatus.Failed("error executing command in container", $"exit code {status.ExitCode} is not 0-255");

        // Whatever the client still types goes nowhere now; dropping it keeps the connection's reader moving.
        stdin?.DiscardIncoming();
        if (stdout is not null)
            await stdout.CloseWriteAsync().ConfigureAwait(false);
        if (stderr is not null)
            await stderr.CloseWriteAsync().ConfigureAwait(false);
        var report = status.Encode(v4: _protocol == V4);
        try
        {
            if (report.Length > 0)
                await error.WriteAsync(report, CancellationToken.None).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The client left before the outcome; nothing to tell anyone.
        }
        await error.CloseWriteAsync().ConfigureAwait(false);
        await gone.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(refuser, resizePump).ConfigureAwait(false);
        return status.Success ? "success" : status.Message;
    }

    /// <summary>The wanted streams, answered as they come; null when the client does not open them all in time.</summary>
    private async Task<Dictionary<string, SpdyStream>?> CollectStreamsAsync(HashSet<string> wanted, CancellationToken gone)
    {
        var streams = new Dictionary<string, SpdyStream>(StringComparer.Ordinal);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(gone);
        timeout.CancelAfter(_creationTimeout);
        try
        {
            while (streams.Count < wanted.Count)
            {
                var stream = await _connection.AcceptStreamAsync(timeout.Token).ConfigureAwait(false);
                if (stream is null)
                    return null;
                var type = stream.Headers.Get("streamtype");
                if (type is null || !wanted.Contains(type) || streams.ContainsKey(type))
                {
                    await stream.ResetAsync(RstStatus.RefusedStream).ConfigureAwait(false);
                    continue;
                }
                await stream.ReplyAsync().ConfigureAwait(false);
                streams[type] = stream;
            }
            return streams;
        }
        catch (OperationCanceledException) when (!gone.IsCancellationRequested)
        {
            StreamingLog.CreationTimeout(_log, _request.Kind, ContainerId, _creationTimeout.TotalSeconds);
            return null;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    private async Task RefuseMoreAsync(CancellationToken gone)
    {
        try
        {
            while (await _connection.AcceptStreamAsync(gone).ConfigureAwait(false) is { } extra)
                await extra.ResetAsync(RstStatus.RefusedStream).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Session over.
        }
    }
}
