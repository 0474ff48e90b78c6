namespace Crid.Core.Containers;

/// <summary>A container to create from a bundle someone else prepared.</summary>
public sealed record CreateContainerRequest
{
    /// <summary>The runtime's container id: letters, digits, '_', '+', '-', '.' (runc's rule), not starting with '.'.</summary>
    public required string Id { get; init; }

    /// <summary>An absolute folder holding config.json and the rootfs it names. The monitor adds its <c>ctl</c> and <c>winsz</c> fifos and the <c>attach</c> socket here.</summary>
    public required string BundlePath { get; init; }

    /// <summary>The CRI log file (absolute): the monitor appends lines in the CRI format to it. Its folder must exist.</summary>
    public required string LogPath { get; init; }

    /// <summary>The container's name for the monitor's own log lines; the id when empty.</summary>
    public string Name { get; init; } = "";

    /// <summary>CRI <c>tty</c>: the process gets a terminal (config.json's process.terminal must say so too).</summary>
    public bool Terminal { get; init; }

    /// <summary>CRI <c>stdin</c>: the process reads what attached clients write.</summary>
    public bool Stdin { get; init; }

    /// <summary>CRI <c>stdin_once</c>: stdin is closed when the first attached client leaves.</summary>
    public bool StdinOnce { get; init; }

    /// <summary>
    /// The bundle being finished (the rootfs mount, config.json) while the monitor starts: the
    /// runtime awaits it once the monitor has been spawned and before it lets the monitor run the
    /// runtime's <c>create</c>, so the monitor's own start-up (an exec and a dozen shared libraries)
    /// overlaps the caller's work instead of following it. Its failure aborts the create (the
    /// monitor killed before it forked, nothing of the runtime's left) and is thrown as it is. The
    /// runtime may fail before awaiting it: the caller awaits it before undoing its own steps.
    /// Null: the bundle is ready already.
    /// </summary>
    public Task? BundleReady { get; init; }
}

/// <summary>What <see cref="IContainerRuntime.CreateAsync"/> made.</summary>
/// <param name="Pid">The container's init process, on the host (waiting in the runtime until started).</param>
/// <param name="MonitorPid">The monitor (conmon) watching it.</param>
public sealed record CreatedContainer(int Pid, int MonitorPid);

/// <summary>The runtime's word for a container's state (runtime-spec runtime.md "state").</summary>
public enum ContainerRuntimeStatus
{
    Created,
    Running,
    Paused,
    Stopped,
}

/// <summary>A container's state, as the runtime and the monitor's files tell it.</summary>
public sealed record ContainerRuntimeState
{
    public required string Id { get; init; }

    public required ContainerRuntimeStatus Status { get; init; }

    /// <summary>The init process on the host; 0 once stopped.</summary>
    public int Pid { get; init; }

    /// <summary>A shell-style code (128 + signal when killed: 137 after SIGKILL); null unless stopped,
    /// and null when stopped without a recorded exit (the monitor died, or the host rebooted).</summary>
    public int? ExitCode { get; init; }

    /// <summary>When the monitor recorded the exit (the exit file's time).</summary>
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>The memory cgroup killed a process of the container (the monitor's <c>oom</c> file).</summary>
    public bool OomKilled { get; init; }
}

/// <summary>A container's exit, as the monitor recorded it.</summary>
public sealed record ContainerExit(string Id, int ExitCode, DateTimeOffset FinishedAt, bool OomKilled);

/// <summary>A command to run to completion in a running container (CRI ExecSync).</summary>
public sealed record ExecSyncRequest
{
    public required string Id { get; init; }

    /// <summary>argv; the container's process spec (user, env, cwd, capabilities) applies otherwise.</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>Zero: no timeout (CRI <c>timeout</c> 0).</summary>
    public TimeSpan Timeout { get; init; }

    /// <summary>At most this many bytes of stdout and stderr together are kept (cri-o's 16 MiB); the rest is read and dropped.</summary>
    public int OutputLimit { get; init; } = 16 * 1024 * 1024;
}

/// <summary>The outcome of an exec: what it wrote, how it ended.</summary>
public sealed record ExecSyncResult
{
    /// <summary>The shell-style exit code; -1 when it timed out.</summary>
    public required int ExitCode { get; init; }

    public required byte[] Stdout { get; init; }

    public required byte[] Stderr { get; init; }

    /// <summary>The timeout passed: the command's process group was killed.</summary>
    public bool TimedOut { get; init; }

    /// <summary>More output came than <see cref="ExecSyncRequest.OutputLimit"/>; the rest was dropped.</summary>
    public bool Truncated { get; init; }
}

/// <summary>An interactive command in a running container (the streaming server's exec).</summary>
public sealed record ExecRequest
{
    public required string Id { get; init; }

    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>One terminal for input and output (stderr goes to it too).</summary>
    public bool Tty { get; init; }

    public bool Stdin { get; init; }

    public bool Stdout { get; init; } = true;

    /// <summary>Ignored with <see cref="Tty"/>: a terminal has one output.</summary>
    public bool Stderr { get; init; } = true;

    /// <summary>The terminal's size from the start (rows, columns); zero leaves the default.</summary>
    public (ushort Rows, ushort Columns) InitialSize { get; init; }
}

/// <summary>A running interactive command.</summary>
public interface IExecSession : IAsyncDisposable
{
    /// <summary>Its keyboard or stdin; null unless asked for. Disposing it closes stdin (no-op on a terminal: send ^D).</summary>
    Stream? Stdin { get; }

    /// <summary>What it writes (with a terminal: everything the terminal shows); null unless asked for.</summary>
    Stream? Stdout { get; }

    /// <summary>Its stderr; null with a terminal or unless asked for.</summary>
    Stream? Stderr { get; }

    /// <summary>Its shell-style exit code, once it has ended.</summary>
    Task<int> Exited { get; }

    /// <summary>Resizes the terminal (no-op without one).</summary>
    void Resize(ushort rows, ushort columns);
}

/// <summary>Where a container's monitor listens, for attach and resize (the streaming server).</summary>
/// <param name="AttachSocket">conmon's SOCK_SEQPACKET attach socket (a path kept short through the
/// monitor's symlink: under the 108-byte sun_path limit).</param>
/// <param name="ControlFifo">conmon's <c>ctl</c> fifo: "1 &lt;rows&gt; &lt;cols&gt;\n" resizes the terminal, "2 0 0\n" reopens the log.</param>
public sealed record ContainerEndpoints(string AttachSocket, string ControlFifo);
