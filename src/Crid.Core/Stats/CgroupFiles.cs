using System.Buffers.Text;
using Crid.Linux;

namespace Crid.Core.Stats;

/// <summary>
/// The files of one cgroup that stats read, each kept open (<see cref="RereadFile"/>) and read
/// afresh by every call: CPU time, memory usage, memory.stat, the memory limit and, for pods, the
/// process count. The values are never kept: a call reads them now. One is kept per container
/// (and per pod with a cgroup of its own) by <see cref="StatsCollector"/> until the object is
/// removed; dispose it then.
/// </summary>
public sealed class CgroupFiles : IDisposable
{
    // v1 memory.stat is about 1.2 KiB, v2's about 2 KiB on 6.x kernels; the buffer has room to spare.
    private const int StatBuffer = 8192;

    private readonly RereadFile? _cpuacct;
    private readonly RereadFile? _cpuStat;
    private readonly RereadFile? _usage;
    private readonly RereadFile? _stat;
    private readonly RereadFile? _limit;
    private readonly RereadFile? _pids;

    public CgroupFiles(CgroupDirs dirs)
    {
        Dirs = dirs;
        if (dirs.Mode == CgroupMode.Unified)
        {
            if (dirs.Unified is { } u)
            {
                _cpuStat = new RereadFile(Path.Combine(u, "cpu.stat"));
                _usage = new RereadFile(Path.Combine(u, "memory.current"));
                _stat = new RereadFile(Path.Combine(u, "memory.stat"));
                _limit = new RereadFile(Path.Combine(u, "memory.max"));
                _pids = new RereadFile(Path.Combine(u, "pids.current"));
            }
            return;
        }
        if (dirs.Cpuacct is { } acct)
            _cpuacct = new RereadFile(Path.Combine(acct, "cpuacct.usage"));
        // cpu.stat's usage_usec is in every cgroup2 folder, with or without the cpu controller (so a
        // hybrid host without cpuacct still has it in its unified mount).
        if (dirs.Unified is { } unified)
            _cpuStat = new RereadFile(Path.Combine(unified, "cpu.stat"));
        if (dirs.Memory is { } mem)
        {
            _usage = new RereadFile(Path.Combine(mem, "memory.usage_in_bytes"));
            _stat = new RereadFile(Path.Combine(mem, "memory.stat"));
            _limit = new RereadFile(Path.Combine(mem, "memory.limit_in_bytes"));
        }
        if (dirs.Pids is { } pids)
            _pids = new RereadFile(Path.Combine(pids, "pids.current"));
    }

    public CgroupDirs Dirs { get; }

    /// <summary>The cumulative CPU time now; null when the cgroup is not there.</summary>
    public CpuSample? Cpu(long now)
    {
        if (_cpuacct is not null && Number(_cpuacct) is { } ns)
            return new CpuSample(now, ns);
        Span<byte> buffer = stackalloc byte[1024];
        Span<ulong> usec = stackalloc ulong[1];
        if (_cpuStat is not null && Text(_cpuStat, buffer, out var text) && Keyed(text, CpuStatKeys, usec) == 1)
            return new CpuSample(now, usec[0] * 1000);
        return null;
    }

    /// <summary>The memory figures now, as kubelet and cAdvisor define them (see <see cref="CgroupStatsReader"/>); null when the cgroup is not there.</summary>
    public MemorySample? Memory(long now)
    {
        if (_usage is null || Number(_usage) is not { } usage)
            return null;
        Span<byte> buffer = stackalloc byte[StatBuffer];
        Span<ulong> v = stackalloc ulong[4];
        // The total_* keys of v1 count the cgroups below too, as usage_in_bytes does (use_hierarchy
        // is always on since 5.x): a pod's parent cgroup is the sum of its containers.
        if (_stat is not null && Text(_stat, buffer, out var stat))
            Keyed(stat, Dirs.Mode == CgroupMode.Unified ? V2MemoryKeys : V1MemoryKeys, v);
        return new MemorySample
        {
            Timestamp = now,
            UsageBytes = usage,
            WorkingSetBytes = usage > v[0] ? usage - v[0] : 0,
            RssBytes = v[1],
            PageFaults = v[2],
            MajorPageFaults = v[3],
            LimitBytes = _limit is null ? null : Limit(_limit),
        };
    }

    /// <summary>pids.current now; null without the pids controller or when the cgroup is not there.</summary>
    public ProcessSample? Processes(long now) =>
        _pids is not null && Number(_pids) is { } current ? new ProcessSample(now, current) : null;

    public void Dispose()
    {
        _cpuacct?.Dispose();
        _cpuStat?.Dispose();
        _usage?.Dispose();
        _stat?.Dispose();
        _limit?.Dispose();
        _pids?.Dispose();
    }

    private static readonly byte[][] CpuStatKeys = ["usage_usec"u8.ToArray()];

    // Working set's inactive file, rss, page faults, major page faults: v2's names, then v1's hierarchical ones.
    private static readonly byte[][] V2MemoryKeys = ["inactive_file"u8.ToArray(), "anon"u8.ToArray(), "pgfault"u8.ToArray(), "pgmajfault"u8.ToArray()];
    private static readonly byte[][] V1MemoryKeys = ["total_inactive_file"u8.ToArray(), "total_rss"u8.ToArray(), "total_pgfault"u8.ToArray(), "total_pgmajfault"u8.ToArray()];

    // kubelet's isMemoryUnlimited: v1 reports "no limit" as a page-rounded 2^63 - 1.
    private const ulong UnlimitedAbove = 1UL << 62;

    private static ulong? Limit(RereadFile file)
    {
        Span<byte> buffer = stackalloc byte[64];
        if (!Text(file, buffer, out var text))
            return null;
        text = Trim(text);
        if (text.SequenceEqual("max"u8))
            return null;
        return ParseNumber(text) is { } v && v <= UnlimitedAbove ? v : null;
    }

    private static ulong? Number(RereadFile file)
    {
        Span<byte> buffer = stackalloc byte[64];
        return Text(file, buffer, out var text) ? ParseNumber(Trim(text)) : null;
    }

    /// <summary>The file's content now; false when it is not there.</summary>
    private static bool Text(RereadFile file, Span<byte> buffer, out ReadOnlySpan<byte> text)
    {
        var n = file.Read(buffer);
        text = n >= 0 ? buffer[..n] : default;
        return n >= 0;
    }

    /// <summary>An unsigned decimal that is the whole of <paramref name="text"/>; null for anything else.</summary>
    internal static ulong? ParseNumber(ReadOnlySpan<byte> text) =>
        text.Length > 0 && Utf8Parser.TryParse(text, out ulong v, out var used) && used == text.Length && text[0] is >= (byte)'0' and <= (byte)'9' ? v : null;

    /// <summary>
    /// The values of <paramref name="keys"/> in a flat keyed file ("key value" lines: memory.stat,
    /// cpu.stat), into <paramref name="values"/> (0 for a key that is absent or not a number); the
    /// count of keys found. Read straight from the bytes: no string or dictionary per call.
    /// </summary>
    internal static int Keyed(ReadOnlySpan<byte> text, ReadOnlySpan<byte[]> keys, Span<ulong> values)
    {
        values[..keys.Length].Clear();
        var found = 0;
        while (!text.IsEmpty && found < keys.Length)
        {
            var end = text.IndexOf((byte)'\n');
            var line = end < 0 ? text : text[..end];
            text = end < 0 ? default : text[(end + 1)..];
            var space = line.IndexOf((byte)' ');
            if (space <= 0)
                continue;
            var key = line[..space];
            for (var k = 0; k < keys.Length; k++)
            {
                if (key.SequenceEqual(keys[k]))
                {
                    if (ParseNumber(Trim(line[(space + 1)..])) is { } v)
                    {
                        values[k] = v;
                        found++;
                    }
                    break;
                }
            }
        }
        return found;
    }

    private static ReadOnlySpan<byte> Trim(ReadOnlySpan<byte> text) => text.Trim(" \t\n\r"u8);
}
