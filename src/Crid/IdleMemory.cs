using System.Diagnostics;

namespace Crid;

/// <summary>
/// Gives the memory a burst of calls grew back to the system in the daemon's quiet moments: a
/// compacting, decommitting GC.
/// </summary>
/// <remarks>
/// Why the daemon does it itself: the GC collects when allocations ask for it, never on a quiet
/// process, so a daemon that served a thousand pods keeps the heap it grew (gen0's budget, regions
/// the last collections freed but kept committed, a fragmented gen2) for as long as little is
/// asked of it — on a node, for hours. <see cref="GCCollectionMode.Aggressive"/> is the mode made
/// for this: it compacts everything and decommits the free regions and the budgets instead of
/// keeping them for the next allocations.
/// <para>When: kubelet polls every second (ListPodSandbox, ListContainers), so a daemon on a node
/// is never idle for long; the gaps between its polls are the quiet moments. The trim runs in one
/// (<see cref="Quiet"/> without a call starting or ending; a long stream, such as an event stream,
/// counts only at its ends, so it cannot hold it off) once the RSS has grown by
/// <see cref="Growth"/> since the last trim, and at most once per <see cref="MinInterval"/>: it
/// costs 10 to 40 ms of one thread, and nothing while the daemon's size holds still. The growth
/// rule, not the interval, spaces trims in practice: 4 MiB is most of what the GC re-commits
/// between collections.</para>
/// <para>docs/benchmark.md has the figures (the "RSS idle after the load" rows). What is not the
/// GC's heap hardly moves: glibc's malloc_trim after this GC gave back 0.1 MiB at most in the
/// benchmark, so it is not called.</para>
/// </remarks>
internal sealed class IdleMemory(ILogger<IdleMemory> log) : BackgroundService
{
    /// <summary>Shorter than the gaps between kubelet's 1 s polls, long enough that a burst of calls is over.</summary>
    internal static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(250);

    internal static readonly TimeSpan MinInterval = TimeSpan.FromSeconds(2);

    /// <summary>RSS growth (KiB) since the last trim that is worth one.</summary>
    internal const long Growth = 4 * 1024;

    private long _lastCall = Stopwatch.GetTimestamp();
    private int _callsSinceCheck;
    private long _lastTrim;
    private long _rssAfterTrim;

    /// <summary>A call started or ended.</summary>
    public void Touch()
    {
        Volatile.Write(ref _lastCall, Stopwatch.GetTimestamp());
        Volatile.Write(ref _callsSinceCheck, 1);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Quiet);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                // Growth comes only from calls: with none since the last look, nothing to do.
                if (Volatile.Read(ref _callsSinceCheck) == 0
                    || Stopwatch.GetElapsedTime(Volatile.Read(ref _lastCall)) < Quiet
                    || (_lastTrim != 0 && Stopwatch.GetElapsedTime(_lastTrim) < MinInterval))
                    continue;
                Interlocked.Exchange(ref _callsSinceCheck, 0);
                if (Rss() >= _rssAfterTrim + Growth)
                    Trim();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private void Trim()
    {
        var before = Rss();
        var t0 = Stopwatch.GetTimestamp();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        _lastTrim = Stopwatch.GetTimestamp();
        _rssAfterTrim = Rss();
        var gc = GC.GetGCMemoryInfo(GCKind.Any);
        IdleMemoryLog.Trimmed(log, before / 1024.0, _rssAfterTrim / 1024.0, Stopwatch.GetElapsedTime(t0).TotalMilliseconds,
            gc.HeapSizeBytes / 1048576.0, gc.TotalCommittedBytes / 1048576.0, gc.FragmentedBytes / 1048576.0);
    }

    /// <summary>This process's resident set in KiB (proc(5): statm's second field, in pages); 0 when unreadable.</summary>
    private static long Rss()
    {
        try
        {
            var fields = File.ReadAllText("/proc/self/statm").Split(' ');
            return long.Parse(fields[1]) * Environment.SystemPageSize / 1024;
        }
        catch (Exception e) when (e is IOException or FormatException or IndexOutOfRangeException)
        {
            return 0;
        }
    }
}

internal static partial class IdleMemoryLog
{
    /// <summary>With the GC's own figures after it (heap, committed, fragmented), so what stays can be told apart from what the GC holds.</summary>
    [LoggerMessage(EventId = 20, Level = LogLevel.Debug, Message = "idle: RSS {Before:F1} MiB, {After:F1} MiB after a compacting GC of {Ms:F1} ms (GC heap {Heap:F1} MiB, committed {Committed:F1}, fragmented {Fragmented:F1})")]
    public static partial void Trimmed(ILogger logger, double before, double after, double ms, double heap, double committed, double fragmented);
}
