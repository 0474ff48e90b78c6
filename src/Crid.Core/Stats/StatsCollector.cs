using System.Collections.Concurrent;
using Crid.Core.Networking;
using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.Core.Stats;

/// <summary>What stats need of a container: who it is, where runc put its cgroup, where its writable layer is.</summary>
/// <param name="CgroupsPath">The spec's linux.cgroupsPath (cgroupfs).</param>
/// <param name="WritableLayer">The overlay's upper folder; null when it has none (not mounted yet, or gone).</param>
public sealed record ContainerStatsSource(string Id, ContainerMetadata Metadata, IDictionary<string, string> Labels,
    IDictionary<string, string> Annotations, string CgroupsPath, string? WritableLayer);

/// <summary>
/// ContainerStats and PodSandboxStats, assembled from the readers: cgroup figures where runc placed
/// the cgroup (<see cref="CgroupLayout"/>), CPU rates against each object's baseline
/// (<see cref="CpuRates"/>), writable layers measured by bounded walks (<see cref="WritableLayerStats"/>),
/// and the pod's interfaces read in its network namespace (<see cref="NetworkStatsReader"/>).
/// A container whose cgroup is not there (never made, or already deleted) has its identity and its
/// layer, no CPU or memory. An exited container keeps its cgroup, so its last figures, until it is removed.
/// </summary>
public sealed class StatsCollector(CgroupLayout layout, CgroupStatsReader reader, CpuRates rates, WritableLayerStats layers, NetworkStatsReader network)
{
    /// <summary>Below this many containers a list is read on the calling thread alone.</summary>
    internal const int ParallelFrom = 64;

    /// <summary>
    /// What is kept per container (and per pod with a cgroup of its own) between calls: its cgroup's
    /// files, open (<see cref="CgroupFiles"/>: the figures are still read on every call), and its
    /// attributes message, which never changes for a container. Dropped by <see cref="Forget"/>.
    /// </summary>
    private sealed class Kept(CgroupFiles files)
    {
        public CgroupFiles Files { get; } = files;

        public ContainerAttributes? Attributes;
    }

    private readonly ConcurrentDictionary<string, Kept> _kept = new(StringComparer.Ordinal);

    public CgroupLayout Layout => layout;

    /// <summary>How many objects have their cgroup files kept (tests: a removed one has none).</summary>
    public int KeptCount => _kept.Count;

    public async Task<ContainerStats> ContainerAsync(ContainerStatsSource c)
    {
        var stats = Now(c, out var layer);
        if (layer is not null && await layer.ConfigureAwait(false) is { } usage)
            stats.WritableLayer = CriStats.Filesystem(usage);
        return stats;
    }

    /// <summary>
    /// The stats of each container, in order. The cgroup figures are read now through the kept
    /// files; a list of many is read by two threads (the two halves at once), which halves the
    /// wait on the kernel's formatting of memory.stat, most of what the call costs. Writable
    /// layers come from <see cref="WritableLayerStats"/> (its age bound); only a layer never
    /// measured before is waited for, the walks queued together.
    /// </summary>
    public async Task<IReadOnlyList<ContainerStats>> ContainersAsync(IReadOnlyList<ContainerStatsSource> containers)
    {
        var stats = new ContainerStats[containers.Count];
        var layers = new Task<LayerUsage?>?[containers.Count];
        void Range(int from, int to)
        {
            for (var i = from; i < to; i++)
                stats[i] = Now(containers[i], out layers[i]);
        }
        if (containers.Count < ParallelFrom || Environment.ProcessorCount < 2)
            Range(0, containers.Count);
        else
        {
            var half = containers.Count / 2;
            var other = Task.Run(() => Range(half, containers.Count));
            Range(0, half);
            await other.ConfigureAwait(false);
        }
        for (var i = 0; i < stats.Length; i++)
            if (layers[i] is { } layer && await layer.ConfigureAwait(false) is { } usage)
                stats[i].WritableLayer = CriStats.Filesystem(usage);
        return stats;
    }

    /// <summary>
    /// The container's stats with its CPU and memory read now; its writable layer is set here when
    /// known, else <paramref name="pendingLayer"/> is the walk to wait for.
    /// </summary>
    private ContainerStats Now(ContainerStatsSource c, out Task<LayerUsage?>? pendingLayer) =>
        Build(c, processes: false, out pendingLayer, out _);

    /// <param name="processes">Read the process count too (a pod's sum has it; ContainerStats has no such field).</param>
    private ContainerStats Build(ContainerStatsSource c, bool processes, out Task<LayerUsage?>? pendingLayer, out CgroupSample sample)
    {
        var kept = KeptFor(c.Id, c.CgroupsPath);
        sample = reader.Read(kept.Files, processes);
        var stats = new ContainerStats { Attributes = kept.Attributes ??= Attributes(c) };
        if (sample.Cpu is { } cpu)
            stats.Cpu = CriStats.Cpu(cpu, rates.Rate(c.Id, cpu));
        if (sample.Memory is { } memory)
            stats.Memory = CriStats.Memory(memory);
        pendingLayer = null;
        if (c.WritableLayer is { } upper)
        {
            var layer = layers.MeasureAsync(c.Id, upper);
            if (!layer.IsCompletedSuccessfully)
                pendingLayer = layer;
            else if (layer.Result is { } usage)
                stats.WritableLayer = CriStats.Filesystem(usage);
        }
        return stats;
    }

    /// <summary>
    /// The attributes message of a container, built once and shared by every answer that carries
    /// it (read-only once built, as ListContainers' entries are).
    /// </summary>
    private static ContainerAttributes Attributes(ContainerStatsSource c) =>
        new() { Id = c.Id, Metadata = c.Metadata, Labels = { c.Labels }, Annotations = { c.Annotations } };

    /// <summary>The kept files of <paramref name="id"/>'s cgroup, opened lazily; new ones when the path changed.</summary>
    private Kept KeptFor(string id, string cgroupsPath)
    {
        while (true)
        {
            var known = _kept.TryGetValue(id, out var k) ? k : null;
            if (known is not null && known.Files.Dirs.Path == cgroupsPath)
                return known;
            var fresh = new Kept(new CgroupFiles(layout.Resolve(cgroupsPath)));
            if (known is null ? _kept.TryAdd(id, fresh) : _kept.TryUpdate(id, fresh, known))
            {
                known?.Files.Dispose();
                return fresh;
            }
            fresh.Files.Dispose();
        }
    }

    /// <summary>
    /// The pod's figures: its own cgroup when it has one (kubelet's pod cgroup, the cgroup_parent
    /// its containers are under), else the sum of its containers'; its interfaces when it has a
    /// network namespace of its own; and each container's stats.
    /// </summary>
    public async Task<PodSandboxStats> PodAsync(Sandbox sandbox, IReadOnlyList<ContainerStatsSource> containers)
    {
        // The pod's own cgroup first: with it, the containers' process counts are not needed.
        CgroupSample? own = null;
        if (sandbox.Config.Linux?.CgroupParent is { Length: > 0 } parent && reader.Read(KeptFor(sandbox.Id, parent).Files, processes: true) is { Cpu: not null } read)
            own = read;
        var samples = new List<CgroupSample>(containers.Count);
        var pending = new Task<LayerUsage?>?[containers.Count];
        var linux = new LinuxPodSandboxStats();
        for (var i = 0; i < containers.Count; i++)
        {
            linux.Containers.Add(Build(containers[i], processes: own is null, out pending[i], out var sample));
            samples.Add(sample);
        }
        for (var i = 0; i < containers.Count; i++)
            if (pending[i] is { } layer && await layer.ConfigureAwait(false) is { } usage)
                linux.Containers[i].WritableLayer = CriStats.Filesystem(usage);

        var pod = own ?? CriStats.Sum(samples, UnixClock.Now());
        if (pod.Cpu is { } cpu)
            linux.Cpu = CriStats.Cpu(cpu, rates.Rate(sandbox.Id, cpu));
        if (pod.Memory is { } memory)
            linux.Memory = CriStats.Memory(memory);
        if (pod.Processes is { } processes)
            linux.Process = CriStats.Processes(processes);
        if (sandbox.State == SandboxState.Ready && sandbox.NamespaceOptions.Network != NamespaceMode.Node
            && sandbox.Pins.TryGetValue("net", out var netns)
            && await network.ReadAsync(netns, PodNetwork.InterfaceName).ConfigureAwait(false) is { } net)
            linux.Network = CriStats.Network(net);
        return new PodSandboxStats
        {
            Attributes = new PodSandboxAttributes
            {
                Id = sandbox.Id,
                Metadata = sandbox.Config.Metadata,
                Labels = { sandbox.Config.Labels },
                Annotations = { sandbox.Config.Annotations },
            },
            Linux = linux,
        };
    }

    /// <summary>
    /// ImageFsInfo's container filesystem: the filesystem of <paramref name="containersDir"/> (where
    /// the writable layers live), with the bytes and inodes of the containers' writable layers summed
    /// (each measured as ContainerStats measures it, reused for the same time).
    /// </summary>
    public async Task<FilesystemUsage> WritableLayersAsync(IEnumerable<ContainerStatsSource> containers, string containersDir)
    {
        ulong bytes = 0, inodes = 0;
        foreach (var c in containers)
            if (c.WritableLayer is { } upper && await layers.MeasureAsync(c.Id, upper).ConfigureAwait(false) is { } usage)
            {
                bytes += usage.UsedBytes;
                inodes += usage.InodesUsed;
            }
        // The folder is made at the first create; until then its parent's filesystem is the one it will be on.
        var existing = containersDir;
        while (!Directory.Exists(existing) && Path.GetDirectoryName(existing) is { } parent)
            existing = parent;
        return new FilesystemUsage
        {
            Timestamp = UnixClock.Now(),
            FsId = new FilesystemIdentifier { Mountpoint = Crid.Linux.FileSystemUsage.Of(existing).MountPoint },
            UsedBytes = new UInt64Value { Value = bytes },
            InodesUsed = new UInt64Value { Value = inodes },
        };
    }

    /// <summary>Drops the baselines and measurements kept for a removed object.</summary>
    public void Forget(string id)
    {
        rates.Forget(id);
        layers.Forget(id);
        if (_kept.TryRemove(id, out var kept))
            kept.Files.Dispose();
    }
}
