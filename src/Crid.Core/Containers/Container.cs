using Crid.Core.Stores;
using Runtime.V1;

namespace Crid.Core.Containers;

/// <summary>The CRI container states (api.proto ContainerState), as crid keeps them.</summary>
public enum ContainerState { Created, Running, Exited, Unknown }

/// <summary>
/// What changes in a container's life, read as an immutable snapshot and changed only through
/// <see cref="StatusStorage{TStatus}.Update"/> (persisted in status.json).
/// </summary>
public sealed record ContainerStatus
{
    public ContainerState State { get; init; }

    /// <summary>The init process on the host while created or running; 0 once it exited.</summary>
    public int Pid { get; init; }

    /// <summary>Nanoseconds since the Unix epoch; 0 until started.</summary>
    public long StartedAt { get; init; }

    /// <summary>Nanoseconds since the Unix epoch; 0 until it exited.</summary>
    public long FinishedAt { get; init; }

    public int ExitCode { get; init; }

    /// <summary>CRI reason: Completed, Error, OOMKilled, StartError, Unknown; empty while it runs.</summary>
    public string Reason { get; init; } = "";

    public string Message { get; init; } = "";

    /// <summary>
    /// The resources as last applied: the config's, or an UpdateContainerResources' since. Never
    /// changed in place (a new message replaces it), so the status stays immutable.
    /// </summary>
    public LinuxContainerResources? Resources { get; init; }
}

/// <summary>
/// One container: what it was created with never changes; what does is its <see cref="Status"/>.
/// Start, Stop and Remove serialise on <see cref="Lock"/> (one per container); the status has its
/// own lock, so the exit recorder and readers never wait for a Stop in progress.
/// </summary>
public sealed class Container : IStoredObject
{
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _removed;

    public required string Id { get; init; }

    /// <summary>k8s_&lt;container&gt;_&lt;pod&gt;_&lt;namespace&gt;_&lt;uid&gt;_&lt;attempt&gt;, unique among live containers.</summary>
    public required string Name { get; init; }

    public required string SandboxId { get; init; }

    public required ContainerConfig Config { get; init; }

    /// <summary>Nanoseconds since the Unix epoch.</summary>
    public required long CreatedAt { get; init; }

    /// <summary>The image's id (sha256:&lt;config digest&gt;).</summary>
    public required string ImageId { get; init; }

    /// <summary>What ContainerStatus.image says: the image's first tag when it had one, else the config's reference.</summary>
    public required string ImageName { get; init; }

    /// <summary>ContainerStatus.image_ref: the image's first repo digest when it had one, else its id.</summary>
    public required string ImageRef { get; init; }

    /// <summary>The sandbox's runtime handler: which runtime runs this container.</summary>
    public required string RuntimeHandler { get; init; }

    /// <summary>The CRI log file (absolute); empty when the pod has no log directory or the config no log path.</summary>
    public required string LogPath { get; init; }

    /// <summary>The signal StopContainer sends first (the config's, else the image's, else SIGTERM).</summary>
    public required int StopSignal { get; init; }

    /// <summary>The container's folder: record, status, config.json (the bundle), rootfs and its layers.</summary>
    public required string Dir { get; init; }

    public required StatusStorage<ContainerStatus> Status { get; init; }

    /// <summary>The lifecycle lock: held by Start, Stop, Remove and UpdateContainerResources.</summary>
    public SemaphoreSlim Lock { get; } = new(1, 1);

    /// <summary>Set once Remove has run, so a caller that waited on the lock sees the container is gone.</summary>
    public bool Removed => _removed;

    internal void MarkRemoved() => _removed = true;

    /// <summary>Completes once the status says Exited (the exit recorder, a failed start, recovery).</summary>
    internal Task Exited => _exited.Task;

    internal void SignalExited() => _exited.TrySetResult();

    public ContainerState State => Status.Get().State;

    public string SpecPath => Path.Combine(Dir, "config.json");

    /// <summary>The overlay's mount point and the bundle's rootfs.</summary>
    public string RootfsPath => Path.Combine(Dir, "rootfs");

    internal string UpperDir => Path.Combine(Dir, "upper");

    internal string WorkDir => Path.Combine(Dir, "work");

    /// <summary>Short names of the image's layers, for the overlay's options (see OverlayMount).</summary>
    internal string LayersDir => Path.Combine(Dir, "layers");

    /// <summary>Host folders of the image's VOLUMEs, deleted with the container.</summary>
    internal string VolumesDir => Path.Combine(Dir, "volumes");

    /// <summary>Where conmon writes when the pod keeps no logs: kept in the folder, gone with it.</summary>
    internal string PrivateLogPath => Path.Combine(Dir, "container.log");

    /// <summary>The file the monitor writes: the CRI log path, or the private one.</summary>
    internal string MonitorLogPath => LogPath.Length > 0 ? LogPath : PrivateLogPath;

    public ContainerMetadata Metadata => Config.Metadata;
}
