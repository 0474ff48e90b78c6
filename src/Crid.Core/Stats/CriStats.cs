using Runtime.V1;

namespace Crid.Core.Stats;

/// <summary>
/// Samples → the CRI stats messages. A figure the sample lacks is left unset (the UInt64Value
/// wrappers exist for that: kubelet tells "unknown" from zero), and every message carries the
/// time its figures were read.
/// </summary>
public static class CriStats
{
    public static CpuUsage Cpu(CpuSample sample, ulong? nanoCores) => new()
    {
        Timestamp = sample.Timestamp,
        UsageCoreNanoSeconds = new UInt64Value { Value = sample.UsageNanoseconds },
        UsageNanoCores = nanoCores is { } n ? new UInt64Value { Value = n } : null,
    };

    public static MemoryUsage Memory(MemorySample sample) => new()
    {
        Timestamp = sample.Timestamp,
        WorkingSetBytes = new UInt64Value { Value = sample.WorkingSetBytes },
        AvailableBytes = sample.AvailableBytes is { } a ? new UInt64Value { Value = a } : null,
        UsageBytes = new UInt64Value { Value = sample.UsageBytes },
        RssBytes = new UInt64Value { Value = sample.RssBytes },
        PageFaults = new UInt64Value { Value = sample.PageFaults },
        MajorPageFaults = new UInt64Value { Value = sample.MajorPageFaults },
    };

    public static FilesystemUsage Filesystem(LayerUsage usage) => new()
    {
        Timestamp = usage.Timestamp,
        FsId = new FilesystemIdentifier { Mountpoint = usage.MountPoint },
        UsedBytes = new UInt64Value { Value = usage.UsedBytes },
        InodesUsed = new UInt64Value { Value = usage.InodesUsed },
    };

    public static ProcessUsage Processes(ProcessSample sample) => new()
    {
        Timestamp = sample.Timestamp,
        ProcessCount = new UInt64Value { Value = sample.Count },
    };

    public static NetworkUsage Network(NetworkSample sample)
    {
        var usage = new NetworkUsage
        {
            Timestamp = sample.Timestamp,
            DefaultInterface = sample.Default is { } d ? Interface(d) : null,
        };
        usage.Interfaces.Add(sample.Others.Select(Interface));
        return usage;
    }

    private static NetworkInterfaceUsage Interface(InterfaceCounters i) => new()
    {
        Name = i.Name,
        RxBytes = new UInt64Value { Value = i.RxBytes },
        RxErrors = new UInt64Value { Value = i.RxErrors },
        TxBytes = new UInt64Value { Value = i.TxBytes },
        TxErrors = new UInt64Value { Value = i.TxErrors },
    };

    /// <summary>
    /// The pod's figures as the sum of its containers', for a pod without a cgroup of its own (no
    /// cgroup_parent: its containers sit beside other pods' under the daemon's default parent).
    /// The sum's time is the latest of its parts'; a limit is only known per container, so the sum has none.
    /// </summary>
    public static CgroupSample Sum(IReadOnlyCollection<CgroupSample> parts, long now)
    {
        var cpus = parts.Select(p => p.Cpu).OfType<CpuSample>().ToList();
        var memories = parts.Select(p => p.Memory).OfType<MemorySample>().ToList();
        var processes = parts.Select(p => p.Processes).OfType<ProcessSample>().ToList();
        return new CgroupSample(
            cpus.Count == 0 ? null : new CpuSample(cpus.Max(c => c.Timestamp), Total(cpus, c => c.UsageNanoseconds)),
            memories.Count == 0 ? null : new MemorySample
            {
                Timestamp = memories.Max(m => m.Timestamp),
                UsageBytes = Total(memories, m => m.UsageBytes),
                WorkingSetBytes = Total(memories, m => m.WorkingSetBytes),
                RssBytes = Total(memories, m => m.RssBytes),
                PageFaults = Total(memories, m => m.PageFaults),
                MajorPageFaults = Total(memories, m => m.MajorPageFaults),
            },
            processes.Count == 0 ? new ProcessSample(now, 0) : new ProcessSample(processes.Max(p => p.Timestamp), Total(processes, p => p.Count)));
    }

    private static ulong Total<T>(IEnumerable<T> items, Func<T, ulong> value)
    {
        ulong total = 0;
        foreach (var item in items)
            total += value(item);
        return total;
    }
}
