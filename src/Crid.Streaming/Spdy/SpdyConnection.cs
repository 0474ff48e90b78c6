using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Crid.Streaming.Spdy;

/// <summary>Limits and timeouts of one SPDY connection.</summary>
internal sealed record SpdyOptions
{
    /// <summary>No frame either way for this long ends the connection (kubelet's stream-idle-timeout).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromHours(4);

    /// <summary>After our GOAWAY, how long we keep reading so the peer sees everything before the close.</summary>
    public TimeSpan Linger { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Streams open at once; more are refused (REFUSED_STREAM).</summary>
    public int MaxStreams { get; init; } = 1024;

    /// <summary>The largest control frame (and inflated header block) accepted.</summary>
    public int MaxControlFrame { get; init; } = 256 * 1024;

    /// <summary>The largest data frame we send.</summary>
    public int MaxDataFrame { get; init; } = 32 * 1024;
}

/// <summary>
/// The server end of a SPDY/3.1 connection (draft-mbelshe-httpbis-spdy-00 with 3.1's session window),
/// as Kubernetes' spdystream peers speak it over an upgraded HTTP/1.1 connection. The peer opens
/// every stream (odd ids); we answer them, PING back, honour RST_STREAM, GOAWAY and half-close.
///
/// Flow control: spdystream neither sends nor honours WINDOW_UPDATE, and kubelet's own server
/// ignores windows, so we send freely until the peer shows it does flow control (a SETTINGS
/// INITIAL_WINDOW_SIZE or any WINDOW_UPDATE); from then on we keep within its windows. We always
/// send WINDOW_UPDATEs as our consumers read, so a conforming peer never stalls, and a peer that
/// overruns our window is held back by TCP (the stream's buffer pauses our reader) rather than reset.
/// </summary>
internal sealed partial class SpdyConnection : IAsyncDisposable
{
    private readonly Stream _transport;
    private readonly PipeReader _input;
    private readonly SpdyOptions _options;
    private readonly ILogger _log;
    private readonly Action _abortTransport;
    private readonly ConcurrentDictionary<uint, SpdyStream> _streams = new();
    private readonly Channel<SpdyStream> _incoming = Channel.CreateUnbounded<SpdyStream>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stopReading = new();
    private readonly Lock _loseLock = new();
    private readonly HeaderInflater _inflater;
    private readonly HeaderDeflater _deflater = new();
    private Task _readLoop = Task.CompletedTask;
    private Task _idleLoop = Task.CompletedTask;
    private long _lastActivity = Environment.TickCount64;
    private uint _lastPeerStream;
    private int _closing;
    private volatile bool _peerGoneAway;

    /// <param name="transport">The upgraded connection; both directions.</param>
    /// <param name="abortTransport">Drops the connection at once (Kestrel's HttpContext.Abort): it is how a stuck write or read is ended.</param>
    public SpdyConnection(Stream transport, SpdyOptions options, ILogger log, Action abortTransport)
    {
        _transport = transport;
        _input = PipeReader.Create(transport, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024, leaveOpen: true));
        _options = options;
        _log = log;
        _abortTransport = abortTransport;
        _inflater = new HeaderInflater(options.MaxControlFrame);
    }

    /// <summary>Fires when the connection is gone: the peer closed or vanished, it idled out, broke the protocol, or was aborted.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>Why the connection was lost, for the log.</summary>
    public string? LostReason { get; private set; }

    public void Start()
    {
        _readLoop = Task.Run(ReadLoopAsync);
        _idleLoop = Task.Run(IdleLoopAsync);
    }

    /// <summary>The next stream the peer opens, not yet answered; null once no more will come.</summary>
    public async ValueTask<SpdyStream?> AcceptStreamAsync(CancellationToken cancel)
    {
        try
        {
            return await _incoming.Reader.ReadAsync(cancel).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    /// <summary>
    /// Ends the connection politely: GOAWAY, then reading on (and dropping what comes) until the peer
    /// closes or the linger time passes, so a reset from unread bytes cannot destroy what we sent.
    /// </summary>
    public async Task CloseAsync()
    {
        if (Interlocked.Exchange(ref _closing, 1) == 0)
        {
            _incoming.Writer.TryComplete();
            try
            {
                await SendGoAwayAsync(GoAwayStatus.Ok).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // Already gone.
            }
        }
        try
        {
            await _readLoop.WaitAsync(_options.Linger).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Lose("the peer did not close after GOAWAY");
        }
        await _readLoop.ConfigureAwait(false);
    }

    /// <summary>Drops the connection now.</summary>
    public void Abort(string reason)
    {
        Lose(reason);
        _abortTransport();
    }

    public async ValueTask DisposeAsync()
    {
        Lose("disposed");
        await _readLoop.ConfigureAwait(false);
        await _idleLoop.ConfigureAwait(false);
        _deflater.Dispose();
    }

    private void Lose(string reason)
    {
        lock (_loseLock)
        {
            if (_stopReading.IsCancellationRequested)
                return;
            LostReason = reason;
            _stopReading.Cancel();
        }
        _incoming.Writer.TryComplete();
        // Waiting writers and window waits end here; the reader loop completes the streams' inputs as it leaves.
        _ = _lost.CancelAsync();
        WakeWindowWaiters();
    }

    /// <summary>A stream that is done or reset leaves the table (its id stays used).</summary>
    internal void Forget(SpdyStream stream)
    {
        if (stream.IsDone)
            _streams.TryRemove(new KeyValuePair<uint, SpdyStream>(stream.Id, stream));
    }

    private void Touch() => Volatile.Write(ref _lastActivity, Environment.TickCount64);

    private async Task IdleLoopAsync()
    {
        var idleMs = (long)_options.IdleTimeout.TotalMilliseconds;
        try
        {
            while (true)
            {
                long quietFor = Environment.TickCount64 - Volatile.Read(ref _lastActivity);
                if (quietFor >= idleMs)
                    break;
                await Task.Delay(TimeSpan.FromMilliseconds(idleMs - quietFor + 1), _lost.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }
        StreamingLog.IdleTimeout(_log, _options.IdleTimeout.TotalSeconds);
        await SayGoAwayAsync(GoAwayStatus.Ok).ConfigureAwait(false);
        Lose("idle for " + _options.IdleTimeout);
    }

    /// <summary>
    /// The last word before we end the connection ourselves. The transport then closes gracefully when
    /// the session returns (an abort would throw away the GOAWAY still in Kestrel's buffers), unless
    /// the peer does not even read that: then it is dropped at once.
    /// </summary>
    private async Task SayGoAwayAsync(GoAwayStatus status)
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0)
            return;
        _incoming.Writer.TryComplete();
        try
        {
            await SendGoAwayAsync(status).WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or TimeoutException)
        {
            Abort("the peer does not read");
        }
    }
}
