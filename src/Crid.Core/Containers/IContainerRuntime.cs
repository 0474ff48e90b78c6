namespace Crid.Core.Containers;

/// <summary>
/// What the container lifecycle needs of an OCI runtime and its monitor, and nothing more: run a
/// container whose bundle (config.json + rootfs) is ready, signal it, remove it, tell its state,
/// notice its exit, and run commands in it. Crid.Runtime implements it with conmon and runc (one
/// instance per runtime handler: the runtime binary and its state root are that instance's);
/// Core's own tests use a fake.
/// </summary>
/// <remarks>
/// Containers outlive the daemon: the monitor is detached, so a daemon that stops or crashes
/// leaves its containers running, and a new instance over the same folders finds them again
/// (<see cref="RecoverAsync"/>), including exits that happened in between. Every call is
/// asynchronous and honours its token; a call cancelled half-way leaves nothing behind.
/// Failures of the runtime are <see cref="Errors.RuntimeFailureException"/> carrying the runtime's
/// own message; an unknown container is <see cref="Errors.NotFoundException"/> where the call
/// needs one, and success where the call is idempotent (delete).
/// </remarks>
public interface IContainerRuntime
{
    /// <summary>
    /// Raised once for every container exit, within a second of it: from the monitor's exit file,
    /// so an exit is also raised when it happened while no instance was watching (noticed at
    /// <see cref="RecoverAsync"/>). Handlers run on the watcher's loop and must not block.
    /// </summary>
    event Action<ContainerExit>? ContainerExited;

    /// <summary>
    /// Starts the container's monitor (detached from the daemon), which runs the runtime's
    /// <c>create</c>: on return the container exists and its process waits for
    /// <see cref="StartAsync"/>. On failure nothing is left (no monitor, no runtime state, no log file).
    /// </summary>
    /// <exception cref="Errors.RuntimeFailureException">the runtime refused the bundle (its message).</exception>
    /// <exception cref="Errors.AlreadyExistsException">the runtime already has a container with that id.</exception>
    Task<CreatedContainer> CreateAsync(CreateContainerRequest request, CancellationToken cancellationToken);

    /// <summary>Runs the created container's process (<c>runc start</c>).</summary>
    /// <exception cref="Errors.NotFoundException">no such container.</exception>
    /// <exception cref="Errors.FailedPreconditionException">it is not in the created state.</exception>
    Task StartAsync(string id, CancellationToken cancellationToken);

    /// <summary>
    /// Sends <paramref name="signal"/> to the container's init process, or with
    /// <paramref name="allProcesses"/> to every process of it. A container that has stopped
    /// already is not an error: there is nothing left to signal.
    /// </summary>
    /// <exception cref="Errors.NotFoundException">no such container.</exception>
    Task KillAsync(string id, int signal, bool allProcesses, CancellationToken cancellationToken);

    /// <summary>
    /// Removes the container: kills it if it still runs, waits for its monitor to record the exit,
    /// then removes the runtime's state, its cgroup and the monitor's files. Idempotent: a
    /// container the runtime does not know is removed already.
    /// </summary>
    Task DeleteAsync(string id, CancellationToken cancellationToken);

    /// <summary>
    /// Applies new resource limits to the running container's cgroup (<c>runc update</c>), for
    /// UpdateContainerResources: <paramref name="linuxResources"/> is a runtime-spec
    /// <c>linux.resources</c> object as UTF-8 JSON; what it leaves out stays as it is.
    /// </summary>
    /// <exception cref="Errors.NotFoundException">no such container.</exception>
    /// <exception cref="Errors.RuntimeFailureException">the runtime refused the values (its message).</exception>
    Task UpdateResourcesAsync(string id, ReadOnlyMemory<byte> linuxResources, CancellationToken cancellationToken);

    /// <summary>The container's state, as the runtime and the monitor's exit file tell it.</summary>
    /// <exception cref="Errors.NotFoundException">neither the runtime nor the monitor know the id.</exception>
    Task<ContainerRuntimeState> StateAsync(string id, CancellationToken cancellationToken);

    /// <summary>
    /// At daemon start, with the ids of every container the lifecycle knows for this handler: the
    /// state of each (an id nobody knows any more comes back Stopped without an exit code), and the
    /// exit watcher running, so exits from now on raise <see cref="ContainerExited"/>. Exits that
    /// happened while no instance watched are in the states returned; an exit landing during the
    /// call may also be raised (handlers are idempotent). Containers this driver has and the
    /// lifecycle does not know (a create cut short by a crash before its record was written) are
    /// deleted.
    /// </summary>
    Task<IReadOnlyDictionary<string, ContainerRuntimeState>> RecoverAsync(IReadOnlyCollection<string> ids, CancellationToken cancellationToken);

    /// <summary>
    /// Makes the monitor close and reopen the container's log file (after a rotation renamed it).
    /// Returns once the new, empty file exists at the log path.
    /// </summary>
    /// <exception cref="Errors.FailedPreconditionException">the container is not running: no monitor writes its log.</exception>
    Task ReopenLogAsync(string id, CancellationToken cancellationToken);

    /// <summary>
    /// Runs a command in the running container and collects its output: stdout and stderr apart,
    /// capped at <see cref="ExecSyncRequest.OutputLimit"/> together (the exit code is kept), the
    /// process group killed when the timeout passes (<see cref="ExecSyncResult.TimedOut"/>).
    /// </summary>
    /// <exception cref="Errors.FailedPreconditionException">the container is not running.</exception>
    Task<ExecSyncResult> ExecSyncAsync(ExecSyncRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Starts a command in the running container with streams for an interactive client (the
    /// streaming server's exec): stdin, stdout and stderr as asked, or one terminal. Disposing the
    /// session kills the command if it still runs.
    /// </summary>
    /// <exception cref="Errors.FailedPreconditionException">the container is not running.</exception>
    Task<IExecSession> ExecAsync(ExecRequest request, CancellationToken cancellationToken);

    /// <summary>Where the streaming server finds a container's monitor (attach and terminal resize).</summary>
    ContainerEndpoints Endpoints(string id);
}
