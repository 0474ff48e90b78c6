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
        // Everything that can refuse the start is checked before anything is made; what is made
        // before a later refusal (folders, lock files) is noted and taken away again.
        var created = new List<string>();
        var locks = new List<FileStream>();
        try
        {
            SocketPermissions.Check(options);
            HostPreparation.CheckRuntimeRoot(options);
            (string Path, string What)[] lockFiles =
            [
                (Path.Combine(options.StateDir, "crid.lock"), $"state dir {options.StateDir}"),
                (HostPreparation.NamespacesLock(options), $"namespaces dir {options.NamespacesDir}"),
                // Its recovery deletes every container it was not told of: a second daemon on the
                // same runtime root would delete the first one's.
                (HostPreparation.RuntimeRootLock(options), $"runtime root {options.RuntimeRoot}"),
            ];
            // Locks whose files exist are taken before the socket is probed: that also kills the helper
            // children of a daemon killed mid-Run, which hold its listening socket open (and would
            // answer the probe) as they hold every descriptor it had.
            var taken = new bool[lockFiles.Length];
            for (var i = 0; i < lockFiles.Length; i++)
            {
                if (File.Exists(lockFiles[i].Path))
                {
                    locks.Add(HostPreparation.Lock(lockFiles[i].Path, lockFiles[i].What, created));
                    taken[i] = true;
                }
            }
            HostPreparation.CheckSocketFree(options.Listen);
            HostPreparation.CreateFolders(options, created);
            for (var i = 0; i < lockFiles.Length; i++)
            {
                if (!taken[i])
                    locks.Add(HostPreparation.Lock(lockFiles[i].Path, lockFiles[i].What, created));
            }
            HostPreparation.ClaimSocket(options.Listen);
        }
        catch (StartupException e)
        {
            Undo(locks, created);
            await Console.Error.WriteLineAsync($"crid: {e.Message}");
            return 1;
        }

        try
        {
            // crid has its own config (--config); appsettings.json is never read, and reloading it
            // watched the working folder with inotify, every folder below it included (started by
            // systemd, that is /), waking a thread on every file made anywhere below. One more
            // such watch of the working folder remains, made by the host while it starts (not by
            // the config reload: --hostBuilder:reloadConfigOnChange and the content root leave it).
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
            ConfigureLogging(builder.Logging, options.LogLevel);
            // The socket's reads and writes run on the thread that is already there instead of being
            // handed to another one each time: every hand-over wakes a sleeping thread, and on this
            // kind of machine (a VM on 2 cores) a wake-up costs tens of microseconds, several per
            // call. Handlers still run on the thread pool (HTTP/2 dispatches every stream there), so
            // nothing of crid's runs on a socket thread; what does is Kestrel's frame parsing.
            builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
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
            builder.Services.AddSingleton<IdleMemory>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<IdleMemory>());

            await using var app = builder.Build();
            var idle = app.Services.GetRequiredService<IdleMemory>();
            app.Use(async (context, next) =>
            {
                idle.Touch();
                try
                {
                    await next(context);
                }
                finally
                {
                    idle.Touch();
                }
            });
            app.MapCriServices();
            var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("crid");
            // Its own listener (TCP, for kubectl and crictl), up before the socket hands out its URLs;
            // the host disposes it with its other singletons.
            var streaming = app.Services.GetRequiredService<StreamingServer>();
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
                await app.Services.GetRequiredService<SandboxManager>().RecoverAsync();
                // Removes what a pull or import cut short by a crash left behind, before any new pull.
                app.Services.GetRequiredService<Crid.Images.Store.ImageStore>().Recover();
                // Then the containers, which need their sandboxes; the image holds of the containers
                // that are gone are released last.
                await app.Services.GetRequiredService<Crid.Core.Containers.ContainerManager>().RecoverAsync(CancellationToken.None);
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
            // Disposing the host (await using) disposes the logger factory, which flushes the console
            // logger's queue: without it the process can exit before its last line is written.
        }
        finally
        {
            foreach (var l in locks)
                l.Dispose();
        }
        return 0;
    }

    /// <summary>A refused start leaves nothing: lock files and folders it made go, newest first.</summary>
    private static void Undo(List<FileStream> locks, List<string> created)
    {
        foreach (var l in locks)
            l.Dispose();
        for (var i = created.Count - 1; i >= 0; i--)
        {
            try
            {
                if (File.Exists(created[i]))
                    File.Delete(created[i]);
                else if (Directory.Exists(created[i]) && !Directory.EnumerateFileSystemEntries(created[i]).Any())
                    Directory.Delete(created[i]);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    internal static string RuntimeInfoText() =>
        System.Reflection.CustomAttributeExtensions.GetCustomAttribute<System.Reflection.AssemblyInformationalVersionAttribute>(typeof(Daemon).Assembly)?.InformationalVersion
        ?? typeof(Daemon).Assembly.GetName().Version?.ToString(3) ?? "0.1.0";

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
        // ASP.NET Core's own chatter (a line per connection) is not the operator's business, and
        // grpc-dotnet's line per failed call ("Error status code ... raised", without the method)
        // would double the ErrorInterceptor's own, which names the method.
        logging.AddFilter("Microsoft", min > LogLevel.Warning ? min : LogLevel.Warning);
        logging.AddFilter("Grpc", min > LogLevel.Warning ? min : LogLevel.Warning);
    }
}

internal static partial class DaemonLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "crid {Version} listening on {Socket}")]
    public static partial void Listening(ILogger logger, string socket, string version);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "crid stopped")]
    public static partial void Stopped(ILogger logger);
}
