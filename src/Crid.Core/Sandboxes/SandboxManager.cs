using Crid.Core.Configuration;
using Crid.Core.Events;
using Crid.Core.Networking;
using Crid.Core.Stores;
using Crid.Linux;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;

namespace Crid.Core.Sandboxes;

/// <summary>
/// The pod sandbox lifecycle: Run, Stop, Remove, lookups and restart recovery, one partial file each.
/// The gRPC layer only translates requests into these calls. State has containerd's shape (see
/// <see cref="ObjectStore{T}"/>): names in a registrar, sandboxes in a store with prefix lookup,
/// each with immutable metadata and a persisted status; Runs a client gave up on are kept for its retry.
/// </summary>
public sealed partial class SandboxManager : IDisposable
{
    private readonly CridOptions _options;
    private readonly ILogger _log;
    private readonly ObjectStore<Sandbox> _sandboxes = new("sandbox");
    private readonly NameRegistrar _names = new("sandbox");
    private readonly PendingCreations<Sandbox> _creations = new();
    private readonly PinIntents _intents;
    private readonly ProcessExitWatcher _exits = new();
    private readonly InfraCommand _infra;
    private readonly PodNetwork _network;
    private readonly ContainerEvents? _events;
    private IPodContainers? _containers;

    public SandboxManager(CridOptions options, ILogger<SandboxManager> log, InfraCommand? infra = null, PodNetwork? network = null,
        ContainerEvents? events = null)
    {
        _events = events;
        _options = options;
        _log = log;
        _infra = infra ?? InfraCommand.Self();
        _network = network ?? new PodNetwork(options, NullLogger<PodNetwork>.Instance);
        SandboxesDir = Path.Combine(options.StateDir, "sandboxes");
        _intents = new PinIntents(Path.Combine(options.StateDir, "pins"));
    }

    /// <summary>
    /// The containers of the pods, stopped and removed with them. Set once, by the container
    /// manager as it is made (it needs the sandboxes first); without one, pods hold no containers.
    /// </summary>
    public void UseContainers(IPodContainers containers)
    {
        ArgumentNullException.ThrowIfNull(containers);
        if (Interlocked.CompareExchange(ref _containers, containers, null) is not null)
            throw new InvalidOperationException("the sandboxes already have a container manager");
    }

    /// <summary>&lt;state-dir&gt;/sandboxes: one folder per sandbox, named by its id.</summary>
    public string SandboxesDir { get; }

    public int Count => _sandboxes.Count;

    /// <summary>Reserved sandbox names and the id holding each.</summary>
    public IReadOnlyDictionary<string, string> ReservedNames() => _names.Snapshot();

    /// <summary>Runs a client gave up waiting for, in flight or finished and not yet collected by a retry.</summary>
    public int PendingRuns => _creations.Count;

    /// <summary>Infra processes whose exit is being watched.</summary>
    internal int WatchedInfras => _exits.Count;

    /// <summary>The sandbox for an id or unique id prefix; NotFound when there is none.</summary>
    public Sandbox Get(string idOrPrefix) => _sandboxes.Get(idOrPrefix, "pod_sandbox_id");

    /// <summary>The sandbox for an id or unique id prefix; null when there is none.</summary>
    public Sandbox? Find(string idOrPrefix) => _sandboxes.Find(idOrPrefix, "pod_sandbox_id");

    /// <summary>Sandboxes matching the CRI filter: id (prefix), state and every label pair.</summary>
    public IEnumerable<Sandbox> List(PodSandboxFilter? filter)
    {
        IEnumerable<Sandbox> all = _sandboxes.List();
        if (filter is null)
            return all;
        if (filter.Id.Length > 0)
            all = all.Where(s => s.Id.StartsWith(filter.Id, StringComparison.Ordinal));
        if (filter.State is { } state)
        {
            var wanted = state.State == PodSandboxState.SandboxReady ? SandboxState.Ready : SandboxState.NotReady;
            all = all.Where(s => s.State == wanted);
        }
        if (filter.LabelSelector.Count > 0)
        {
            all = all.Where(s => filter.LabelSelector.All(kv => s.Config.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value));
        }
        return all;
    }

    /// <summary>k8s_&lt;name&gt;_&lt;namespace&gt;_&lt;uid&gt;_&lt;attempt&gt;, the name kubelet's pods are known by.</summary>
    internal static string NameOf(PodSandboxMetadata m) => $"k8s_{m.Name}_{m.Namespace}_{m.Uid}_{m.Attempt}";

    public void Dispose() => _exits.Dispose();
}

/// <summary>How the pod's infra process (PID 1 of a shared pid namespace) is started.</summary>
public sealed record InfraCommand(string Executable, IReadOnlyList<string> Args)
{
    /// <summary>The daemon's own binary in its pause mode: a real program, exec'd, with default signal dispositions.</summary>
    public static InfraCommand Self() =>
        new(Environment.ProcessPath ?? throw new InvalidOperationException("the daemon's executable path is unknown"), ["crid-pause", "pause"]);
}
