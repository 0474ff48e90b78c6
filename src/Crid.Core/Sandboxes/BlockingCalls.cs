using System.Collections.Concurrent;

namespace Crid.Core.Sandboxes;

/// <summary>
/// Host calls that wait inside (PodNamespaces.Create waits for its namespace workers, a recursive
/// delete or an unmount can take long) run here, on dedicated threads, while the caller awaits: a
/// thread-pool thread never blocks, so a burst of calls on two cores cannot starve the pool that
/// serves gRPC and reads CNI plugins' output.
/// </summary>
/// <remarks>
/// The threads live on between calls: starting a thread per call (as this did before) cost
/// RunPodSandbox 0.3 to 0.6 ms of its caller's time on the benchmark machine, where handing work to
/// a waiting thread costs one wake-up. A call never waits behind another: when no thread is idle,
/// one more starts. A thread idle for <see cref="IdleTimeout"/> ends, so a burst leaves none behind.
/// As with the thread-per-call before, the caller's continuation may run on the thread that did
/// the work (await without RunContinuationsAsynchronously).
/// </remarks>
internal static class BlockingCalls
{
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(10);
    private static readonly BlockingCollection<Action> Queue = [];

    // Threads waiting for work that no call has claimed yet.
    private static int s_idle;
    private static int s_threads;

    /// <summary>Threads alive, idle or busy (tests).</summary>
    internal static int Threads => Volatile.Read(ref s_threads);

    public static Task<T> RunAsync<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>();
        Queue.Add(() =>
        {
            try
            {
                done.SetResult(work());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        });
        if (!TryClaimIdle())
        {
            Interlocked.Increment(ref s_threads);
            new Thread(Loop) { IsBackground = true, Name = "crid-blocking" }.Start();
        }
        return done.Task;
    }

    private static void Loop()
    {
        try
        {
            while (true)
            {
                if (!Queue.TryTake(out var item, IdleTimeout))
                {
                    // Leave only while some thread is counted idle: a count of 0 means every idle
                    // thread was claimed by a call whose work is queued, and it may be this one's.
                    if (TryClaimIdle())
                        return;
                    continue;
                }
                item();
                Interlocked.Increment(ref s_idle);
            }
        }
        finally
        {
            Interlocked.Decrement(ref s_threads);
        }
    }

    private static bool TryClaimIdle()
    {
        var idle = Volatile.Read(ref s_idle);
        while (idle > 0)
        {
            var seen = Interlocked.CompareExchange(ref s_idle, idle - 1, idle);
            if (seen == idle)
                return true;
            idle = seen;
        }
        return false;
    }
}
