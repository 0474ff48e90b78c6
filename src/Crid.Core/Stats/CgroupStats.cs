namespace Crid.Core.Stats;

/// <summary>Cumulative CPU time of a cgroup at one moment.</summary>
/// <param name="Timestamp">When it was read, Unix nanoseconds.</param>
/// <param name="UsageNanoseconds">CPU time over all cores since the cgroup was made.</param>
public sealed record CpuSample(long Timestamp, ulong UsageNanoseconds);

/// <summary>A cgroup's memory at one moment, as kubelet and cAdvisor define the figures.</summary>
public sealed record MemorySample
{
    /// <summary>When it was read, Unix nanoseconds.</summary>
    public required long Timestamp { get; init; }

    /// <summary>Everything charged to the cgroup, page cache included.</summary>
    public required ulong UsageBytes { get; init; }

    /// <summary>Usage less the inactive file cache: what the kernel cannot easily take back (kubelet evicts on it).</summary>
    public required ulong WorkingSetBytes { get; init; }

    /// <summary>Anonymous memory and swap cache (v1 total_rss, v2 anon).</summary>
    public required ulong RssBytes { get; init; }

    public required ulong PageFaults { get; init; }

    public required ulong MajorPageFaults { get; init; }

    /// <summary>The cgroup's limit; null when it has none.</summary>
    public ulong? LimitBytes { get; init; }

    /// <summary>Limit less working set (CRI MemoryUsage.available_bytes); null without a limit, as kubelet leaves it.</summary>
    public ulong? AvailableBytes => LimitBytes is { } limit ? (limit > WorkingSetBytes ? limit - WorkingSetBytes : 0) : null;
}

/// <summary>How many processes a cgroup (and the cgroups below it) holds at one moment.</summary>
public sealed record ProcessSample(long Timestamp, ulong Count);

/// <summary>One reading of a cgroup; a part is null when the cgroup (or that hierarchy) is not there.</summary>
public sealed record CgroupSample(CpuSample? Cpu, MemorySample? Memory, ProcessSample? Processes);

/// <summary>
/// Reads a cgroup's CPU, memory and process figures from its files, for cgroup v1 (and the hybrid
/// layout, where runc uses v1) and v2. The definitions are kubelet's (pkg/kubelet/stats) and
/// cAdvisor's: working set = usage − inactive file (v1 total_inactive_file, hierarchical; v2
/// inactive_file), RSS = v1 total_rss / v2 anon, page faults from memory.stat, and no
/// available bytes without a limit (a v1 "unlimited" is PAGE_COUNTER_MAX pages, above 2^62).
/// Each part carries the time it was read.
/// </summary>
public sealed class CgroupStatsReader(Func<long>? clock = null)
{
    private readonly Func<long> _clock = clock ?? UnixClock.Now;

    /// <summary>One reading of the cgroup at <paramref name="dirs"/>, its files opened for it and closed after.</summary>
    public CgroupSample Read(CgroupDirs dirs)
    {
        using var files = new CgroupFiles(dirs);
        return Read(files, processes: true);
    }

    /// <summary>
    /// One reading through kept files (ListContainerStats' way: no open or close per call). A
    /// container's stats have no process count: <paramref name="processes"/> is for pods.
    /// </summary>
    public CgroupSample Read(CgroupFiles files, bool processes) =>
        new(files.Cpu(_clock()), files.Memory(_clock()), processes ? Processes(files) : null);

    public CpuSample? Cpu(CgroupDirs dirs)
    {
        using var files = new CgroupFiles(dirs);
        return files.Cpu(_clock());
    }

    public MemorySample? Memory(CgroupDirs dirs)
    {
        using var files = new CgroupFiles(dirs);
        return files.Memory(_clock());
    }

    public ProcessSample? Processes(CgroupDirs dirs)
    {
        using var files = new CgroupFiles(dirs);
        return Processes(files);
    }

    private ProcessSample? Processes(CgroupFiles files)
    {
        var now = _clock();
        if (files.Processes(now) is { } sample)
            return sample;
        var dirs = files.Dirs;
        // Without the pids controller: count the members, of the cgroups below too (pids.current's scope).
        var dir = dirs.Mode == CgroupMode.Unified ? dirs.Unified : dirs.Memory ?? dirs.Cpuacct ?? dirs.Unified;
        if (dir is null || !Directory.Exists(dir))
            return null;
        return CountProcesses(dir, depth: 0) is { } count ? new ProcessSample(now, count) : null;
    }

    private static ulong? CountProcesses(string dir, int depth)
    {
        var text = ReadText(Path.Combine(dir, "cgroup.procs"));
        if (text is null)
            return null;
        var count = (ulong)text.AsSpan().Count('\n');
        // Kubernetes nests pod → container; 32 levels is far beyond any real tree.
        if (depth < 32)
        {
            try
            {
                foreach (var child in Directory.EnumerateDirectories(dir))
                    count += CountProcesses(child, depth + 1) ?? 0;
            }
            catch (DirectoryNotFoundException)
            {
                // Removed while counting: what was counted stands.
            }
        }
        return count;
    }

    /// <summary>A file's text; null when it (or its cgroup) is not there.</summary>
    private static string? ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            // Not there (ENOENT), or its cgroup removed between open and read (ENODEV): a container
            // that stopped has no figures, which is what null says.
            return null;
        }
    }
}

/// <summary>Wall-clock time as CRI timestamps carry it.</summary>
public static class UnixClock
{
    /// <summary>Nanoseconds since the Unix epoch (100 ns resolution).</summary>
    public static long Now() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
}
