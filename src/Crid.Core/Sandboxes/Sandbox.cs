using Crid.Core.Networking;
using Runtime.V1;

namespace Crid.Core.Sandboxes;

public enum SandboxState { Ready, NotReady }

/// <summary>
/// One pod sandbox. What it was created with never changes; its state and infra process sit behind
/// <see cref="Lock"/>, which every call that changes the sandbox holds (one lock per sandbox).
/// </summary>
public sealed class Sandbox
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

    /// <summary>The folder holding the record, config.json, resolv.conf and hostname.</summary>
    public required string Dir { get; init; }

    public SemaphoreSlim Lock { get; } = new(1, 1);

    public SandboxState State { get; set; }

    /// <summary>PID 1 of the pod's pid namespace (pid mode POD), 0 when there is none or it was stopped.</summary>
    public int InfraPid { get; set; }

    /// <summary>The pod network attachment (CNI); null with network NODE or when no network was configured.</summary>
    public NetworkAttachment? Network { get; init; }

    /// <summary>Set once Remove has run, so a caller that waited on the lock sees the sandbox is gone.</summary>
    public bool Removed { get; set; }

    public string SpecPath => Path.Combine(Dir, "config.json");

    /// <summary>The pod's /dev/shm tmpfs, mounted while the sandbox is ready and its ipc namespace is its own.</summary>
    public string ShmPath => Path.Combine(Dir, "shm");

    public bool HasOwnShm => NamespaceOptions.Ipc != NamespaceMode.Node;

    public NamespaceOption NamespaceOptions =>
        Config.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption();
}
