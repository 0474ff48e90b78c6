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
/// A container without a cgroup (created, or exited) has its identity and its layer, no CPU or memory.
/// </summary>
public sealed class StatsCollector(CgroupLayout layout, CgroupStatsReader reader, CpuRates rates, WritableLayerStats layers, NetworkStatsReader network)
{
    public CgroupLayout Layout => layout;

    public async Task<ContainerStats> ContainerAsync(ContainerStatsSource c)
    {
        var sample = reader.Read(layout.Resolve(c.CgroupsPath));
        return await ContainerAsync(c, sample).ConfigureAwait(false);
    }

    private async Task<ContainerStats> ContainerAsync(ContainerStatsSource c, CgroupSample sample)
    {
        var stats = new ContainerStats
        {
            Attributes = new ContainerAttributes { Id = c.Id, Metadata = c.Metadata, Labels = { c.Labels }, Annotations = { c.Annotations } },
        };
        if (sample.Cpu is { } cpu)
            stats.Cpu = CriStats.Cpu(cpu, rates.Rate(c.Id, cpu));
        if (sample.Memory is { } memory)
            stats.Memory = CriStats.Memory(memory);
        if (c.WritableLayer is { } upper && await layers.MeasureAsync(c.Id, upper).ConfigureAwait(false) is { } usage)
            stats.WritableLayer = CriStats.Filesystem(usage);
        return stats;
    }

    /// <summary>
    /// The pod's figures: its own cgroup when it has one (kubelet's pod cgroup, the cgroup_parent
    /// its containers are under), else the sum of its containers'; its interfaces when it has a
    /// network namespace of its own; and each container's stats.
    /// </summary>
    public async Task<PodSandboxStats> PodAsync(Sandbox sandbox, IReadOnlyList<ContainerStatsSource> containers)
    {
        var samples = containers.Select(c => reader.Read(layout.Resolve(c.CgroupsPath))).ToList();
        var linux = new LinuxPodSandboxStats();
        for (var i = 0; i < containers.Count; i++)
            linux.Containers.Add(await ContainerAsync(containers[i], samples[i]).ConfigureAwait(false));

        CgroupSample pod;
        if (sandbox.Config.Linux?.CgroupParent is { Length: > 0 } parent && reader.Read(layout.Resolve(parent)) is { Cpu: not null } own)
            pod = own;
        else
            pod = CriStats.Sum(samples, UnixClock.Now());
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
    }
}
