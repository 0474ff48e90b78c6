using System.Threading.Channels;

namespace Crid.Streaming;

/// <summary>
/// The container side of exec and attach: what the container lifecycle (runc and conmon) provides to
/// the streaming server. The server owns the client connection, its streams and the status it
/// reports; an implementation only runs the process and moves bytes. With Core's
/// <see cref="Crid.Core.Containers.IContainerRuntime"/> it comes to a lookup of the container and two
/// calls: <see cref="Containers.RuntimeExec.RunAsync"/> and <see cref="Containers.ConmonAttach.RunAsync"/>.
/// Registered in DI as a singleton, it replaces <see cref="NoContainers"/>.
/// </summary>
public interface IContainerStreams
{
    /// <summary>
    /// Called by the Exec and Attach RPCs before a URL is handed out, so a bad id fails the RPC
    /// rather than the later connection; returns the container's full id (the one the later call
    /// gets), so an implementation may accept unique prefixes as the sandbox calls do. Must be quick.
    /// Throws <see cref="Crid.Core.Errors.NotFoundException"/> for an unknown container and
    /// <see cref="Crid.Core.Errors.FailedPreconditionException"/> for one that is not running.
    /// </summary>
    string CheckRunning(string containerId);

    /// <summary>
    /// Runs <paramref name="command"/> in the running container (runc exec, with a pty when
    /// <see cref="ContainerIo.Tty"/>) wired to <paramref name="io"/>, and returns its exit code
    /// (0-255; 128+N for a process killed by signal N) once it has exited and its output is
    /// written. Throws for a command that could not be started; the message reaches the client.
    /// When <paramref name="cancel"/> fires the client is gone: kill the process and return promptly,
    /// leaving no process and no descriptor behind.
    /// </summary>
    Task<int> ExecAsync(string containerId, IReadOnlyList<string> command, ContainerIo io, CancellationToken cancel);

    /// <summary>
    /// Attaches <paramref name="io"/> to the container's main process (conmon's attach socket; resizes
    /// through its ctl fifo) until that process exits or the client is gone (<paramref name="cancel"/>),
    /// and returns without stopping the container. Stdin is only forwarded when the container was
    /// created with stdin; at stdin's end a container created with stdin_once has its stdin closed.
    /// </summary>
    Task AttachAsync(string containerId, ContainerIo io, CancellationToken cancel);
}

/// <summary>
/// The client's side of an exec or attach. Each stream is present only when the request asked for it.
/// Writes to <see cref="Stdout"/>/<see cref="Stderr"/> throw <see cref="IOException"/> once the
/// client is gone; disposing one ends it for the client (the server ends every stream after the call
/// anyway). <see cref="Stdin"/> reads return 0 when the client closed its stdin or went away.
/// </summary>
public sealed class ContainerIo
{
    public Stream? Stdin { get; init; }

    public Stream? Stdout { get; init; }

    /// <summary>Never with a tty: the terminal merges stderr into stdout.</summary>
    public Stream? Stderr { get; init; }

    public bool Tty { get; init; }

    /// <summary>
    /// Terminal sizes as the client's window changes, the first one being the size to start with;
    /// only the latest matters, older ones are dropped when not read in time. Null without a tty or
    /// with a client that cannot resize (protocols before v3); completes when the client stops.
    /// </summary>
    public ChannelReader<TerminalSize>? Resizes { get; init; }
}

/// <summary>A terminal's size in character cells, as Kubernetes' clients send it.</summary>
public readonly record struct TerminalSize(ushort Width, ushort Height);
