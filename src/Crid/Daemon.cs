using Crid.Core.Configuration;
using Crid.Core.Sandboxes;
using Crid.Server;
using Crid.Server.Http2;
using Crid.Streaming;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Crid;

internal static class Daemon
{
    public static async Task<int> RunAsync(CridOptions options)
    {
        FileStream stateLock;
        try
        {
            HostPreparation.CreateFolders(options);
            stateLock = HostPreparation.LockStateDir(options);
            HostPreparation.ClaimSocket(options.Listen);
        }
        catch (StartupException e)
        {
            await Console.Error.WriteLineAsync($"crid: {e.Message}");
            return 1;
        }

        using var _ = stateLock;
        var builder = WebApplication.CreateSlimBuilder();
        ConfigureLogging(builder.Logging, options.LogLevel);
        builder.Services.AddSystemd();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.ListenUnixSocket(options.Listen, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                // crictl and kubelet up to v1.30 send the socket path as :authority, which Kestrel rejects.
                listen.UseAuthorityRewrite();
            });
        });
        builder.Services.AddCriServices(options);

        var app = builder.Build();
        app.MapCriServices();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("crid");
        // Its own listener (TCP, for kubectl and crictl), up before the socket hands out its URLs.
        await using var streaming = app.Services.GetRequiredService<StreamingServer>();
        try
        {
            await streaming.StartAsync();
        }
        catch (IOException e)
        {
            await Console.Error.WriteLineAsync($"crid: streaming server: {e.Message}");
            return 1;
        }
        try
        {
            // Before the socket answers: a restarted daemon knows every pod before anyone asks.
            app.Services.GetRequiredService<SandboxManager>().Recover();
            await app.StartAsync();
            SocketPermissions.Apply(options);
        }
        catch (Exception e) when (e is IOException or StartupException)
        {
            await Console.Error.WriteLineAsync($"crid: cannot listen on {options.Listen}: {e.Message}");
            return 1;
        }
        DaemonLog.Listening(log, options.Listen, RuntimeInfoText());
        await app.WaitForShutdownAsync();
        // Open exec and port-forward sessions end with the daemon; their processes are killed.
        await streaming.StopAsync();
        DaemonLog.Stopped(log);
        return 0;
    }

    private static string RuntimeInfoText() =>
        typeof(Daemon).Assembly.GetName().Version?.ToString(3) ?? "0.1.0";

    private static void ConfigureLogging(ILoggingBuilder logging, string level)
    {
        var min = level switch
        {
            "trace" => LogLevel.Trace,
            "debug" => LogLevel.Debug,
            "warning" => LogLevel.Warning,
            "error" => LogLevel.Error,
            "critical" => LogLevel.Critical,
            "none" => LogLevel.None,
            _ => LogLevel.Information,
        };
        logging.ClearProviders();
        // stderr for everything: stdout stays free, and journald captures stderr under systemd,
        // where AddSystemd switches the console format to journal priority prefixes.
        logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
        logging.SetMinimumLevel(min);
        // ASP.NET Core's own chatter (a line per connection) is not the operator's business.
        logging.AddFilter("Microsoft", min > LogLevel.Warning ? min : LogLevel.Warning);
    }
}

internal static partial class DaemonLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "crid {Version} listening on {Socket}")]
    public static partial void Listening(ILogger logger, string socket, string version);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "crid stopped")]
    public static partial void Stopped(ILogger logger);
}
