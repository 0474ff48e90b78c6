using System.Diagnostics;
using Crid.Linux;
using Xunit.Abstractions;

namespace Crid.Linux.Tests;

/// <summary>
/// Median Create (net+ipc+uts, loopback up) and Remove over 200 pods, reported, not asserted:
/// timings on a shared VM are too noisy to fail a build on. Long-lived namespace workers and
/// a thread per call are measured in alternating blocks so both see the same background load.
/// </summary>
[Trait("Category", "Perf")]
public class PerfTests(ITestOutputHelper output)
{
    [Fact]
    public void Create_and_remove_median()
    {
        using var tmp = new TempNsDir();
        var request = new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("net", false), new("ipc", false), new("uts", false)],
            LoopbackUp = true,
        };
        var create = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        var remove = new List<double>();
        try
        {
            for (int round = 0; round < 9; round++)
            {
                foreach (bool workers in new[] { round % 2 == 0, round % 2 != 0 })
                {
                    NamespaceThreads.UseWorkers = workers;
                    for (int i = 0; i < 25; i++)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        var r = PodNamespaces.Create(request);
                        long t1 = Stopwatch.GetTimestamp();
                        foreach (var p in r.Pins)
                        {
                            p.Remove();
                        }

                        long t2 = Stopwatch.GetTimestamp();
                        if (round > 0)
                        {
                            // Round 0 is the warm-up (JIT, first workers, folders).
                            create[workers].Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                            remove.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
                        }
                    }
                }
            }
        }
        finally
        {
            NamespaceThreads.UseWorkers = true;
        }

        foreach (var (workers, times) in create)
        {
            output.WriteLine($"create ({(workers ? "workers" : "thread per call")}): median {Median(times):F3} ms over {times.Count}");
        }

        output.WriteLine($"remove (3 pins): median {Median(remove):F3} ms over {remove.Count}");
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }
}
