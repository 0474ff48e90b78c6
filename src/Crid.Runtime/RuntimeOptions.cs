namespace Crid.Runtime;

/// <summary>
/// One runtime handler's driver: which monitor and runtime binaries, and the folders the driver
/// owns. Every folder is absolute and created (0700) when missing; none is shared with another
/// daemon (never the host's /run/runc).
/// </summary>
public sealed record RuntimeOptions
{
    /// <summary>conmon (Debian's 2.1.6 is what this driver speaks to).</summary>
    public string ConmonPath { get; init; } = "/usr/bin/conmon";

    /// <summary>runc, or another binary with runc's command line (a runtime handler may name one).</summary>
    public string RuntimePath { get; init; } = "/usr/sbin/runc";

    /// <summary>The runtime's state root (<c>runc --root</c>): one folder per container, its state.json.</summary>
    public required string RuntimeRoot { get; init; }

    /// <summary>
    /// The driver's own folder: <c>exits/</c> (conmon's --exit-dir), <c>attach/</c> (its
    /// --socket-dir-path: one short symlink per container to the bundle) and <c>containers/&lt;id&gt;/</c>
    /// (its --persist-dir, the pid files and the driver's own links). Keep it short: an attach
    /// socket's path, &lt;dir&gt;/attach/&lt;id&gt;/attach, must fit in 108 bytes. One per handler:
    /// a driver's exit watcher reports every exit file of its folder.
    /// </summary>
    public required string StateDir { get; init; }

    /// <summary>conmon's --log-level: error, warn, info, debug or trace (its own messages; without --syslog they are dropped after it detaches).</summary>
    public string MonitorLogLevel { get; init; } = "info";

    /// <summary>conmon's --log-size-max in bytes; negative: unlimited (kubelet rotates the log).</summary>
    public long LogSizeMax { get; init; } = -1;

    /// <summary>The monitor's environment (cri-o's monitor_env default); nothing of the daemon's own leaks to it.</summary>
    public IReadOnlyList<string> MonitorEnvironment { get; init; } = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];

    /// <summary>How long runc create may take before the container is given up (cri-o's ContainerCreateTimeout).</summary>
    public TimeSpan CreateTimeout { get; init; } = TimeSpan.FromSeconds(240);

    /// <summary>TEST ONLY: the daemon's crash point (Crid.Core.Configuration.TestCrash); empty in production.</summary>
    public string TestOnlyCrashAt { get; init; } = "";

    /// <summary>How long a runtime command (start, kill, delete, state) may take before it is killed.</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(60);
}
