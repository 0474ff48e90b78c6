using System.Diagnostics;
using Runtime.V1;
using Xunit.Abstractions;

namespace Crid.EndToEnd.Tests;

/// <summary>Many clients, many full lifecycles: every call succeeds and nothing is left.</summary>
public sealed class LoadTests(ITestOutputHelper output)
{
    private const int Clients = 8;
    private const int Lifecycles = 100;

    [Fact]
    public async Task Eight_clients_each_run_a_hundred_lifecycles_without_a_leak()
    {
        await using var d = await DaemonProcess.StartAsync();
        var pid = d.Process.Id;
        var before = Leaks.MemoryKiB(pid);
        var peak = before;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, Leaks.MemoryKiB(pid));
                await Task.Delay(20);
            }
        });

        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
        {
            for (var i = 0; i < Lifecycles; i++)
            {
                // Every fourth pod shares a pid namespace: an infra process to start and to kill.
                var config = SandboxTests.Minimal($"load-{c}-{i}", i % 4 == 0 ? NamespaceMode.Pod : NamespaceMode.Container);
                var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
                var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id });
                Assert.Equal(PodSandboxState.SandboxReady, status.Status.State);
                await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
                await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
            }
        })));
        var elapsed = watch.Elapsed;
        sampling.Cancel();
        await sampler;
        var after = Leaks.MemoryKiB(pid);

        output.WriteLine($"{Clients * Lifecycles} lifecycles by {Clients} clients in {elapsed.TotalSeconds:F1} s");
        output.WriteLine($"daemon RSS: before {before / 1024.0:F1} MiB, peak {peak / 1024.0:F1} MiB (VmHWM {Leaks.MemoryKiB(pid, "VmHWM") / 1024.0:F1} MiB), after {after / 1024.0:F1} MiB");

        Assert.Empty((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
        Assert.Empty(Leaks.PinFiles(d.NamespacesDir));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "sandboxes")));
        Assert.Empty(await Leaks.ReservedNamesAsync(d));
        Assert.Empty(Leaks.ChildrenOf(pid));
        Assert.DoesNotContain("failed unexpectedly", d.Stderr);
    }
}
