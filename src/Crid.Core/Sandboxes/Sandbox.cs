using Crid.Core.Networking;
using Crid.Core.Stores;
using Runtime.V1;

namespace Crid.Core.Sandboxes;

public enum SandboxState { Ready, NotReady }

/// <summary>
/// What changes in a sandbox's life, read as an immutable snapshot and changed only through
/// <see cref="StatusStorage{TStatus}.Update"/> (persisted in status.json).
/// </summary>
public sealed record SandboxStatus
{
    public SandboxState State { get; init; }

    /// <summary>PID 1 of the pod's pid namespace (pid mode POD), 0 when there is none or it was stopped.</summary>
    public int InfraPid { get; init; }

    /// <summary>The pod network attachment (CNI); null with network NODE or when no network was configured.</summary>
    public NetworkAttachment? Network { get; init; }
}

/// <summary>
/// One pod sandbox: what it was created with never changes; what does is its <see cref="Status"/>.
/// Stop and Remove serialise on <see cref="Lock"/> (one per sandbox); the status has its own lock,
/// so an exit watch or a reader never waits for a Stop in progress.
/// </summary>
public sealed class Sandbox : IStoredObject
{
    public required string Id { get; init; }

    /// <summary>k8s_&lt;name&gt;_&lt;namespace&gt;_&lt;uid&gt;_&lt;attempt&gt;, unique among live sandboxes.</summary>
    public required string Name { get; init; }

    public required PodSandboxConfig Config { get; init; }

    /// <summary>Nanoseconds since the Unix epoch, as CRI reports created_at.</summary>
    public required long CreatedAt { get; init; }

    public required string RuntimeHandler { get; init; }

    public required string Hostname { get; init; }

    /// <summary>The uuid all of this pod's pins share; empty when nothing was pinned.</summary>
    public required string Uuid { get; init; }

    /// <summary>Pin paths by namespace type: net, ipc, uts, user, pid.</summary>
    public required IReadOnlyDictionary<string, string> Pins { get; init; }

    /// <summary>The folder holding the record, the status, config.json, resolv.conf and hostname.</summary>
    public required string Dir { get; init; }

    public required StatusStorage<SandboxStatus> Status { get; init; }

    /// <summary>The lifecycle lock: held by Stop and Remove (and, later, container calls that need the pod to stay).</summary>
    public SemaphoreSlim Lock { get; } = new(1, 1);

    private volatile bool _removed;

    /// <summary>Set once Remove has run, so a caller that waited on the lock sees the sandbox is gone.</summary>
    public bool Removed => _removed;

    internal void MarkRemoved() => _removed = true;

    /// <summary>The exit watch of the infra process; touched only under <see cref="Lock"/> (or before the sandbox is published).</summary>
    internal IDisposable? InfraWatch { get; set; }

    /// <summary>The current state (a snapshot of <see cref="Status"/>).</summary>
    public SandboxState State => Status.Get().State;

    /// <summary>The current infra pid (a snapshot of <see cref="Status"/>).</summary>
    public int InfraPid => Status.Get().InfraPid;

    /// <summary>The current network attachment (a snapshot of <see cref="Status"/>).</summary>
    public NetworkAttachment? Network => Status.Get().Network;

    public string SpecPath => Path.Combine(Dir, "config.json");

    /// <summary>The pod's /dev/shm tmpfs, mounted while the sandbox is ready and its ipc namespace is its own.</summary>
    public string ShmPath => Path.Combine(Dir, "shm");

    public bool HasOwnShm => NamespaceOptions.Ipc != NamespaceMode.Node;

    public NamespaceOption NamespaceOptions =>
        Config.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption();
}
