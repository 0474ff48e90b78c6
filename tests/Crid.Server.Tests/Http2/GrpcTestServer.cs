using Crid.Server.Http2;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Runtime.V1;

namespace Crid.Tests.Http2;

/// <summary>A real Kestrel + Grpc.AspNetCore server on a Unix socket in a temp folder of its own.</summary>
internal sealed class GrpcTestServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _dir;

    private readonly WarningCollector _logs;

    private GrpcTestServer(WebApplication app, string dir, string socketPath, WarningCollector logs)
    {
        _logs = logs;
        _app = app;
        _dir = dir;
        SocketPath = socketPath;
    }

    public string SocketPath { get; }

    /// <summary>Every log entry at Warning or above so far: a misbehaving connection must not make the server complain.</summary>
    public IReadOnlyList<string> Warnings => _logs.Entries;

    public static async Task<GrpcTestServer> StartAsync(bool rewriteAuthority)
    {
        // Unix socket paths are limited to ~108 bytes: keep the folder name short.
        string dir = Path.Combine(Path.GetTempPath(), "crid-h2-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        string socketPath = Path.Combine(dir, "crid.sock");
        var logs = new WarningCollector();
        try
        {
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = dir });
            builder.Logging.ClearProviders();
            builder.Logging.AddProvider(logs);
            builder.WebHost.ConfigureKestrel(o => o.ListenUnixSocket(socketPath, lo =>
            {
                lo.Protocols = HttpProtocols.Http2;
                if (rewriteAuthority)
                {
                    lo.UseAuthorityRewrite();
                }
            }));
            builder.Services.AddGrpc();
            var app = builder.Build();
            app.MapGrpcService<TestRuntimeService>();
            await app.StartAsync();
            return new GrpcTestServer(app, dir, socketPath, logs);
        }
        catch
        {
            Directory.Delete(dir, recursive: true);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        finally
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}

/// <summary>Implements Version only; every other RPC answers UNIMPLEMENTED (grpc-status 12).</summary>
internal sealed class TestRuntimeService : RuntimeService.RuntimeServiceBase
{
    public const string RuntimeName = "crid-test";

    public override Task<VersionResponse> Version(VersionRequest request, ServerCallContext context)
        => Task.FromResult(new VersionResponse
        {
            Version = "0.1.0",
            RuntimeName = RuntimeName,
            RuntimeVersion = "0.1.0",
            RuntimeApiVersion = "v1",
        });
}

/// <summary>Collects log entries at Warning and above.</summary>
internal sealed class WarningCollector : ILoggerProvider
{
    private readonly List<string> _entries = [];

    public IReadOnlyList<string> Entries
    {
        get
        {
            lock (_entries)
            {
                return [.. _entries];
            }
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(WarningCollector owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lock (owner._entries)
                {
                    owner._entries.Add($"{logLevel} {category}: {formatter(state, exception)} {exception}");
                }
            }
        }
    }
}
