using System.Diagnostics;

namespace Crid;

/// <summary>
/// Gives the memory a burst of calls grew back to the system once the daemon goes quiet: a
/// compacting, decommitting GC.
/// </summary>
/// <remarks>
/// Why the daemon does it itself: the GC collects when allocations ask for it, never on a quiet
/// process, so a daemon that served a thousand pods and then sits idle keeps the heap it grew
/// (gen0's budget, regions the last collections freed but kept committed, a fragmented gen2) for
/// as long as it stays idle — on a node, for hours. <see cref="GCCollectionMode.Aggressive"/> is
/// the mode made for this: it compacts everything and decommits the free regions and the
/// budgets instead of keeping them for the next allocations. It runs once per quiet spell, after
/// <see cref="Quiet"/> without a call starting or ending (a long stream, such as an event
/// stream, counts only at its ends, so it cannot keep the daemon from trimming), and costs a few
/// milliseconds of one thread on a daemon that has nothing else to do. docs/benchmark.md has the
/// figures (the "RSS 30 s after load" row). What is not the GC's heap hardly moves: glibc's
/// malloc_trim after this GC gave back 0.1 MiB at most in the benchmark, so it is not called.
/// </remarks>
internal sealed class IdleMemory(ILogger<IdleMemory> log) : BackgroundService
{
    /// <summary>Short enough that a busy spell's memory goes soon after; long enough to miss kubelet's 1 s and 10 s polls' gaps only when truly idle.</summary>
    internal static readonly TimeSpan Quiet = TimeSpan.FromSeconds(5);

    private long _lastCall = Stopwatch.GetTimestamp();
    private int _callsSinceTrim;

    /// <summary>A call started or ended.</summary>
    public void Touch()
    {
        Volatile.Write(ref _lastCall, Stopwatch.GetTimestamp());
        Interlocked.Exchange(ref _callsSinceTrim, 1);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                if (Volatile.Read(ref _callsSinceTrim) == 0 || Stopwatch.GetElapsedTime(Volatile.Read(ref _lastCall)) < Quiet)
                    continue;
                Interlocked.Exchange(ref _callsSinceTrim, 0);
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
        IdleMemoryLog.Trimmed(log, before / 1024.0, Rss() / 1024.0, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
    }

    /// <summary>This process's VmRSS in KiB, 0 when unreadable (only for the log line).</summary>
    private static long Rss()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim());
            }
        }
        catch (IOException)
        {
        }
        return 0;
    }
}

internal static partial class IdleMemoryLog
{
    [LoggerMessage(EventId = 20, Level = LogLevel.Debug, Message = "idle: RSS {Before:F1} MiB, {After:F1} MiB after a compacting GC of {Ms:F1} ms")]
    public static partial void Trimmed(ILogger logger, double before, double after, double ms);
}
