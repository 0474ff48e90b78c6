using System.Threading.Channels;
using Crid.Core.Configuration;
using Crid.Core.Events;
using Crid.Core.Images;
using Crid.Core.Oci;
using Crid.Core.Sandboxes;
using Crid.Core.Stores;
using Microsoft.Extensions.Logging;
using Runtime.V1;

namespace Crid.Core.Containers;

/// <summary>
/// The container lifecycle: Create, Start, Stop, Remove, Status, List, exits and restart recovery,
/// one partial file each. State has the sandboxes' shape (see <see cref="ObjectStore{T}"/>): names
/// in a registrar, containers in a store with prefix lookup, each with immutable metadata and a
/// persisted status. The runtime (conmon + runc, per handler) runs the containers; the image
/// store holds their layers; the rootfs is an overlay this manager mounts.
/// </summary>
public sealed partial class ContainerManager : IPodContainers, IDisposable
{
    private const UnixFileMode TraversableDir = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    private readonly CridOptions _options;
    private readonly ILogger _log;
    private readonly SandboxManager _sandboxes;
    private readonly IContainerImages _images;
    private readonly ContainerRuntimes _runtimes;
    private readonly IHostFacts _host;
    private readonly ObjectStore<Container> _containers = new("container");
    private readonly NameRegistrar _names = new("container");
    private readonly PendingCreations<Container> _creations = new();
    private readonly Channel<ContainerExit> _exits = Channel.CreateUnbounded<ContainerExit>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _exitRecorder;
    private readonly ContainerEvents? _events;

    public ContainerManager(CridOptions options, ILogger<ContainerManager> log, SandboxManager sandboxes, IContainerImages images,
        ContainerRuntimes runtimes, IHostFacts? host = null, ContainerEvents? events = null)
    {
        _events = events;
        _options = options;
        _log = log;
        _sandboxes = sandboxes;
        _images = images;
        _runtimes = runtimes;
        _host = host ?? LinuxHostFacts.Instance;
        ContainersDir = Path.Combine(options.StateDir, "containers");
        // Before anything can exit: the runtime raises each exit once, on its watcher's loop, which
        // must not wait; the recorder writes them in order on its own.
        foreach (var runtime in runtimes.ByHandler.Values)
            runtime.ContainerExited += e => _exits.Writer.TryWrite(e);
        _exitRecorder = Task.Run(RecordExitsAsync);
        sandboxes.UseContainers(this);
    }

    /// <summary>&lt;state-dir&gt;/containers: one folder per container, named by its id.</summary>
    public string ContainersDir { get; }

    public int Count => _containers.Count;

    /// <summary>Reserved container names and the id holding each.</summary>
    public IReadOnlyDictionary<string, string> ReservedNames() => _names.Snapshot();

    /// <summary>Creates a client gave up waiting for, in flight or finished and not yet collected by a retry.</summary>
    public int PendingCreates => _creations.Count;

    /// <summary>The container for an id or unique id prefix; NotFound when there is none.</summary>
    public Container Get(string idOrPrefix) => _containers.Get(idOrPrefix, "container_id");

    /// <summary>The container for an id or unique id prefix; null when there is none.</summary>
    public Container? Find(string idOrPrefix) => _containers.Find(idOrPrefix, "container_id");

    /// <summary>Containers matching the CRI filter: id (prefix), state, sandbox id (prefix) and every label pair.</summary>
    public IEnumerable<Container> List(ContainerFilter? filter)
    {
        IEnumerable<Container> all = _containers.List();
        if (filter is null)
            return all;
        if (filter.Id.Length > 0)
            all = all.Where(c => c.Id.StartsWith(filter.Id, StringComparison.Ordinal));
        if (filter.State is { } state)
            all = all.Where(c => ToCri(c.State) == state.State);
        if (filter.PodSandboxId.Length > 0)
            all = all.Where(c => c.SandboxId.StartsWith(filter.PodSandboxId, StringComparison.Ordinal));
        if (filter.LabelSelector.Count > 0)
            all = all.Where(c => filter.LabelSelector.All(kv => c.Config.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value));
        return all;
    }

    /// <summary>The containers of one sandbox.</summary>
    public IReadOnlyList<Container> OfSandbox(string sandboxId) =>
        _containers.List().Where(c => c.SandboxId == sandboxId).ToList();

    public static Runtime.V1.ContainerState ToCri(ContainerState state) => state switch
    {
        ContainerState.Created => Runtime.V1.ContainerState.ContainerCreated,
        ContainerState.Running => Runtime.V1.ContainerState.ContainerRunning,
        ContainerState.Exited => Runtime.V1.ContainerState.ContainerExited,
        _ => Runtime.V1.ContainerState.ContainerUnknown,
    };

    /// <summary>k8s_&lt;container&gt;_&lt;pod&gt;_&lt;namespace&gt;_&lt;uid&gt;_&lt;attempt&gt;: containerd's and dockershim's container names.</summary>
    internal static string NameOf(ContainerMetadata container, PodSandboxMetadata pod) =>
        $"k8s_{container.Name}_{pod.Name}_{pod.Namespace}_{pod.Uid}_{container.Attempt}";

    internal static long NowNs() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    internal static long ToNs(DateTimeOffset t) => (t.UtcTicks - DateTime.UnixEpoch.Ticks) * 100;

    public void Dispose()
    {
        _exits.Writer.TryComplete();
        _exitRecorder.Wait(TimeSpan.FromSeconds(5));
    }
}
