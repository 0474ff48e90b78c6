using System.Net;
using Crid.Streaming.PortForward;
using Crid.Streaming.RemoteCommand;
using Crid.Streaming.Spdy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Crid.Streaming;

/// <summary>
/// The streaming server: an HTTP/1.1 listener of its own (not the CRI socket: clients reach it over
/// TCP, and it must not expose the CRI), serving /exec/TOKEN, /attach/TOKEN and /portforward/TOKEN.
/// Each request takes its token, negotiates a subprotocol, upgrades to SPDY/3.1 and runs a session.
/// </summary>
public sealed class StreamingServer : IAsyncDisposable
{
    private readonly StreamingOptions _options;
    private readonly IContainerStreams _containers;
    private readonly IPodNetworks _networks;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stopping = new();
    private WebApplication? _app;
    private Uri? _baseUrl;

    public StreamingServer(StreamingOptions options, IContainerStreams containers, IPodNetworks networks, ILoggerFactory loggers, TimeProvider? time = null)
    {
        _options = options;
        _containers = containers;
        _networks = networks;
        _loggers = loggers;
        _log = loggers.CreateLogger("Crid.Streaming");
        Tokens = new StreamingTokens(options.TokenLifetime, options.MaxTokens, time);
    }

    public StreamingTokens Tokens { get; }

    /// <summary>http://address:port/, known once started.</summary>
    public Uri BaseUrl => _baseUrl ?? throw new InvalidOperationException("the streaming server is not started");

    /// <summary>The container side of exec and attach, for the RPCs' checks.</summary>
    public IContainerStreams Containers => _containers;

    /// <summary>The pods' networks, for the PortForward RPC's check.</summary>
    public IPodNetworks Networks => _networks;

    /// <summary>A single-use URL for <paramref name="request"/>.</summary>
    public string UrlFor(StreamingRequest request) => new Uri(BaseUrl, $"{request.Kind}/{Tokens.Add(request)}").ToString();

    /// <summary>Binds the listener; <see cref="IOException"/> when the address cannot be had.</summary>
    public async Task StartAsync(CancellationToken cancel = default)
    {
        // No appsettings reload: it would watch the daemon's working folder and every folder below
        // it with inotify (under systemd, all of /). The daemon's own host is made the same way.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
        // The daemon's logging (levels, format, filters) for Kestrel's lines too.
        builder.Logging.ClearProviders();
        builder.Services.Replace(ServiceDescriptor.Singleton(_loggers));
        // The daemon owns the process's signals and decides when this server stops; a console
        // lifetime of its own would take SIGTERM away from the daemon's host.
        builder.Services.Replace(ServiceDescriptor.Singleton<IHostLifetime, OwnedLifetime>());
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxConcurrentConnections = _options.MaxConnections;
            kestrel.Limits.MaxConcurrentUpgradedConnections = _options.MaxConnections;
            kestrel.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
            kestrel.Listen(_options.Address, _options.Port, listen => listen.Protocols = HttpProtocols.Http1);
        });
        var app = builder.Build();
        app.Run(HandleAsync);
        try
        {
            await app.StartAsync(cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new IOException($"cannot listen on {new IPEndPoint(_options.Address, _options.Port)}: {e.Message}", e);
        }
        _app = app;
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        int port = new Uri(bound).Port;
        var host = _options.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
            : _options.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : _options.Address;
        _baseUrl = new Uri($"http://{new IPEndPoint(host, port)}/");
        StreamingLog.Listening(_log, _baseUrl.ToString());
    }

    /// <summary>Ends every session (exec'd processes are killed, forwards closed) and the listener.</summary>
    public async Task StopAsync(CancellationToken cancel = default)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_app is { } app)
            await app.StopAsync(cancel).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_app is { } app)
            await app.DisposeAsync().ConfigureAwait(false);
        _app = null;
    }

    private async Task HandleAsync(HttpContext context)
    {
        var segments = (context.Request.Path.Value ?? "").Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (segments.Length != 2 || segments[0] is not ("exec" or "attach" or "portforward"))
        {
            await RefuseAsync(context, StatusCodes.Status404NotFound, "no such streaming endpoint").ConfigureAwait(false);
            return;
        }
        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsPost(context.Request.Method))
        {
            await RefuseAsync(context, StatusCodes.Status405MethodNotAllowed, "streaming endpoints take GET or POST").ConfigureAwait(false);
            return;
        }
        // Taken before anything else is checked: a token is good for one try, as with kubelet.
        var request = Tokens.Take(segments[1]);
        if (request is null || request.Kind != segments[0])
        {
            await RefuseAsync(context, StatusCodes.Status404NotFound, "unknown, used or expired streaming token").ConfigureAwait(false);
            return;
        }

        var upgrade = context.Features.Get<IHttpUpgradeFeature>();
        if (upgrade is not { IsUpgradableRequest: true }
            || !HeaderHas(context.Request.Headers.Connection, "upgrade")
            || !HeaderHas(context.Request.Headers.Upgrade, "spdy/3.1"))
        {
            await RefuseAsync(context, StatusCodes.Status400BadRequest, "unable to upgrade: this server speaks SPDY/3.1 (Connection: Upgrade, Upgrade: SPDY/3.1)").ConfigureAwait(false);
            return;
        }
        string[] supported = request is PortForwardStreamRequest ? [PortForwardSession.Protocol] : RemoteCommandSession.Protocols;
        var offered = context.Request.Headers["X-Stream-Protocol-Version"]
            .SelectMany(v => (v ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            .ToList();
        if (offered.Count == 0)
        {
            await RefuseAsync(context, StatusCodes.Status400BadRequest, "unable to upgrade: X-Stream-Protocol-Version is required").ConfigureAwait(false);
            return;
        }
        var protocol = offered.FirstOrDefault(supported.Contains);
        if (protocol is null)
        {
            context.Response.Headers["X-Accepted-Stream-Protocol-Versions"] = supported;
            await RefuseAsync(context, StatusCodes.Status403Forbidden,
                $"unable to upgrade: unable to negotiate protocol: client supports [{string.Join(" ", offered)}], server accepts [{string.Join(" ", supported)}]").ConfigureAwait(false);
            return;
        }

        context.Response.Headers.Upgrade = "SPDY/3.1";
        context.Response.Headers["X-Stream-Protocol-Version"] = protocol;
        var transport = await upgrade.UpgradeAsync().ConfigureAwait(false);
        var spdy = new SpdyOptions { IdleTimeout = _options.IdleTimeout, Linger = _options.Linger };
        var connection = new SpdyConnection(transport, spdy, _log, context.Abort);
        await using (connection.ConfigureAwait(false))
        {
            connection.Start();
            StreamingLog.SessionStarted(_log, request.Kind, request.Target, protocol);
            string outcome;
            try
            {
                outcome = request is PortForwardStreamRequest forward
                    ? await new PortForwardSession(connection, forward, _networks, _options.CreationTimeout, _log).RunAsync(_stopping.Token).ConfigureAwait(false)
                    : await new RemoteCommandSession(connection, request, protocol, _containers, _options.CreationTimeout, _log).RunAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                StreamingLog.SessionCrashed(_log, e);
                outcome = "crashed: " + e.Message;
            }
            await connection.CloseAsync().ConfigureAwait(false);
            StreamingLog.SessionEnded(_log, request.Kind, request.Target, outcome);
        }
    }

    /// <summary>A lifetime that waits for nothing and listens to no signal: StartAsync/StopAsync are the owner's.</summary>
    private sealed class OwnedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static bool HeaderHas(Microsoft.Extensions.Primitives.StringValues values, string token) =>
        values.Any(v => v is not null && v.Contains(token, StringComparison.OrdinalIgnoreCase));

    private async Task RefuseAsync(HttpContext context, int status, string reason)
    {
        StreamingLog.Refused(_log, status, reason);
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync(reason + "\n").ConfigureAwait(false);
    }
}
