using System.Diagnostics;
using Crid.Linux;

namespace Crid.Bench;

/// <summary>
/// The kernel's floor for a sandbox: the pinning core alone, in this process, asked for exactly the
/// namespaces the daemon pins for the benchmark pod (SandboxManager.PinNamespaces: net new with lo
/// up, ipc new, uts new with the hostname, the host's user namespace). No gRPC, no files, no records.
/// </summary>
internal static class Floor
{
    /// <param name="workers">false: each namespace step on a new thread (PodNamespacesOptions.UseWorkers), to compare.</param>
    public static (Samples Create, Samples Remove) Measure(string namespacesDir, int iterations, int warmup, Progress progress, bool workers = true)
    {
        var options = new PodNamespacesOptions { UseWorkers = workers };
        var phase = workers ? "floor" : "floor, thread per call";
        var create = new Samples();
        var remove = new Samples();
        for (var i = 0; i < warmup + iterations; i++)
        {
            var (c, r) = Once(namespacesDir, i, options);
            if (i >= warmup)
            {
                create.Add(c);
                remove.Add(r);
            }
            progress.Tick(phase, i + 1, warmup + iterations);
        }
        return (create, remove);
    }

    /// <summary>One pod's namespaces pinned, then each pin removed: the two times in ms.</summary>
    public static (double Create, double Remove) Once(string namespacesDir, int i, PodNamespacesOptions options)
    {
        var request = new PodNamespacesRequest
        {
            NamespacesDir = namespacesDir,
            Namespaces = [new("net", false), new("ipc", false), new("uts", false), new("user", true)],
            LoopbackUp = true,
            Hostname = $"floor-{i}",
        };
        var t0 = Stopwatch.GetTimestamp();
        var result = PodNamespaces.Create(request, options);
        var t1 = Stopwatch.GetTimestamp();
        // The daemon's StopPodSandbox order: uts, ipc, net (user is the host's here).
        for (var p = result.Pins.Count - 1; p >= 0; p--)
            result.Pins[p].Remove();
        var t2 = Stopwatch.GetTimestamp();
        return (Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds, Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
    }
}
