using System.Collections.Concurrent;
using Crid.Core.Errors;
using Crid.Streaming.Tests.Client;
using Crid.Streaming.Tests.Host;
using Microsoft.Extensions.Logging;

namespace Crid.Streaming.Tests;

/// <summary>A real streaming server on 127.0.0.1 and a free port, over host processes and a given pod network.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    private TestServer(StreamingServer server, HostProcessStreams containers, TestNetworks networks, LogSink log)
    {
        Server = server;
        Containers = containers;
        Networks = networks;
        Log = log;
    }

    public StreamingServer Server { get; }

    public HostProcessStreams Containers { get; }

    public TestNetworks Networks { get; }

    public LogSink Log { get; }

    public static async Task<TestServer> StartAsync(StreamingOptions? options = null, TimeProvider? time = null) =>
        await StartAsync(null, options, time);

    /// <summary>A server whose containers are <paramref name="containers"/> (host processes when null).</summary>
    public static async Task<TestServer> StartAsync(IContainerStreams? containers, StreamingOptions? options = null, TimeProvider? time = null)
    {
        var hostProcesses = new HostProcessStreams();
        var networks = new TestNetworks();
        var log = new LogSink();
        var server = new StreamingServer(options ?? new StreamingOptions { Linger = TimeSpan.FromSeconds(2) }, containers ?? hostProcesses, networks, log, time);
        await server.StartAsync();
        return new TestServer(server, hostProcesses, networks, log);
    }

    public string ExecUrl(string[] command, bool stdin = false, bool stdout = true, bool stderr = false, bool tty = false) =>
        Server.UrlFor(new ExecStreamRequest(HostProcessStreams.Container, command, stdin, stdout, stderr, tty));

    public string PortForwardUrl(string sandbox = TestNetworks.Sandbox) => Server.UrlFor(new PortForwardStreamRequest(sandbox));

    /// <summary>Upgrades to SPDY with the kubectl/crictl protocol list for exec and attach.</summary>
    public static async Task<SpdyTestClient> ConnectAsync(string url, FlowMode mode = FlowMode.Spdystream, int window = 64 * 1024, params string[] protocols)
    {
        var answer = await SpdyTestClient.UpgradeAsync(url, protocols.Length > 0 ? protocols : ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"], mode, window);
        Assert.True(answer.Status == 101, $"upgrade answered {answer.Status}: {answer.Body}");
        return answer.Client!;
    }

    public async ValueTask DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>Pods for port-forward: one sandbox, on the host's network unless a namespace is set.</summary>
internal sealed class TestNetworks : IPodNetworks
{
    public const string Sandbox = "sandbox-under-test";

    public string? NetNamespace { get; set; }

    public bool Ready { get; set; } = true;

    public (string SandboxId, string? NetNamespace) Find(string sandboxId)
    {
        if (sandboxId != Sandbox)
            throw new NotFoundException($"sandbox \"{sandboxId}\" not found");
        if (!Ready)
            throw new FailedPreconditionException($"sandbox \"{sandboxId}\" is not ready");
        return (Sandbox, NetNamespace);
    }
}

/// <summary>Collects log lines, so a test can tell what the server said (and that it said nothing alarming).</summary>
internal sealed class LogSink : ILoggerFactory, ILoggerProvider
{
    public ConcurrentQueue<(LogLevel Level, string Category, string Message, Exception? Error)> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Sink(this, categoryName);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    public IEnumerable<string> AtLeast(LogLevel level) =>
        Lines.Where(l => l.Level >= level).Select(l => $"{l.Level} {l.Category}: {l.Message} {l.Error}");

    private sealed class Sink(LogSink owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Lines.Enqueue((logLevel, category, formatter(state, exception), exception));
    }
}
