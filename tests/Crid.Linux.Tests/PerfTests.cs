using System.Diagnostics;
using Crid.Linux;
using Xunit.Abstractions;

namespace Crid.Linux.Tests;

/// <summary>Median Create (net+ipc+uts, loopback up) and Remove times; reported, not asserted.</summary>
[Trait("Category", "Perf")]
public class PerfTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Create_and_remove_median(bool workers)
    {
        using var tmp = new TempNsDir();
        var request = new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("net", false), new("ipc", false), new("uts", false)],
            LoopbackUp = true,
        };
        NamespaceThreads.UseWorkers = workers;
        try
        {
            for (int i = 0; i < 20; i++)
            {
                foreach (var p in PodNamespaces.Create(request).Pins)
                {
                    p.Remove();
                }
            }

            const int N = 200;
            var create = new double[N];
            var remove = new double[N];
            for (int i = 0; i < N; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                var r = PodNamespaces.Create(request);
                long t1 = Stopwatch.GetTimestamp();
                foreach (var p in r.Pins)
                {
                    p.Remove();
                }

                long t2 = Stopwatch.GetTimestamp();
                create[i] = Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds;
                remove[i] = Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds;
            }

            Array.Sort(create);
            Array.Sort(remove);
            output.WriteLine($"workers={workers} create median {create[N / 2]:F3} ms p90 {create[N * 9 / 10]:F3}; remove median {remove[N / 2]:F3} ms p90 {remove[N * 9 / 10]:F3}");
        }
        finally
        {
            NamespaceThreads.UseWorkers = true;
        }
    }
}
