using System.Diagnostics;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// ListContainerStats and ListPodSandboxStats over real containers, each figure checked against the
/// container's cgroup files read by the test just before and just after the call (the daemon keeps
/// those files open and reads them again on every call: the figures must still be the ones of the
/// moment of the call), and what the daemon keeps open for them let go when a container goes.
/// </summary>
public sealed class StatsListTests(KubeletDaemon k) : IClassFixture<KubeletDaemon>
{
    /// <summary>The figures of one cgroup as the test reads them from the files (kubelet's definitions).</summary>
    private sealed record Files(ulong Cpu, ulong Usage, ulong WorkingSet, ulong Rss, ulong PageFaults, ulong MajorPageFaults, ulong? Limit);

    private bool Hybrid => Directory.Exists("/sys/fs/cgroup/memory");

    private Files Read(string id)
    {
        string Dir(string controller) => Hybrid ? $"/sys/fs/cgroup/{controller}{k.Daemon.CgroupParent}/crid-{id}" : $"/sys/fs/cgroup{k.Daemon.CgroupParent}/crid-{id}";
        Dictionary<string, ulong> Keyed(string path) => File.ReadAllLines(path).Select(l => l.Split(' ')).Where(p => p.Length == 2 && ulong.TryParse(p[1], out _))
            .ToDictionary(p => p[0], p => ulong.Parse(p[1]));
        ulong Number(string path) => ulong.Parse(File.ReadAllText(path).Trim());
        if (Hybrid)
        {
            var stat = Keyed(Path.Combine(Dir("memory"), "memory.stat"));
            var usage = Number(Path.Combine(Dir("memory"), "memory.usage_in_bytes"));
            var limit = Number(Path.Combine(Dir("memory"), "memory.limit_in_bytes"));
            return new Files(Number(Path.Combine(Dir("cpuacct"), "cpuacct.usage")), usage, usage - Math.Min(usage, stat["total_inactive_file"]), stat["total_rss"],
                stat["total_pgfault"], stat["total_pgmajfault"], limit > 1UL << 62 ? null : limit);
        }
        var v2 = Keyed(Path.Combine(Dir(""), "memory.stat"));
        var current = Number(Path.Combine(Dir(""), "memory.current"));
        var max = File.ReadAllText(Path.Combine(Dir(""), "memory.max")).Trim();
        return new Files(Keyed(Path.Combine(Dir(""), "cpu.stat"))["usage_usec"] * 1000, current, current - Math.Min(current, v2["inactive_file"]), v2["anon"],
            v2["pgfault"], v2["pgmajfault"], max == "max" ? null : ulong.Parse(max));
    }

    private static void Between(ulong low, ulong value, ulong high, string what)
    {
        if (low > high)
            (low, high) = (high, low);
        Assert.True(low <= value && value <= high, $"{what}: {value} not within the files' {low}..{high}");
    }

    /// <summary>Every figure of <paramref name="s"/> lies between the files read before and after the call.</summary>
    private static void Matches(Files before, ContainerStats s, Files after, long t0, long t1)
    {
        Between(before.Cpu, s.Cpu.UsageCoreNanoSeconds.Value, after.Cpu, "cpu");
        Between(before.Usage, s.Memory.UsageBytes.Value, after.Usage, "usage");
        Between(before.WorkingSet, s.Memory.WorkingSetBytes.Value, after.WorkingSet, "working set");
        Between(before.Rss, s.Memory.RssBytes.Value, after.Rss, "rss");
        Between(before.PageFaults, s.Memory.PageFaults.Value, after.PageFaults, "page faults");
        Between(before.MajorPageFaults, s.Memory.MajorPageFaults.Value, after.MajorPageFaults, "major page faults");
        Assert.Equal(before.Limit, after.Limit);
        if (before.Limit is { } limit)
            Between(limit - Math.Min(limit, before.WorkingSet), s.Memory.AvailableBytes.Value, limit - Math.Min(limit, after.WorkingSet), "available");
        else
            Assert.Null(s.Memory.AvailableBytes);
        // The figures' times are the call's, not a kept reading's.
        Assert.InRange(s.Cpu.Timestamp, t0, t1);
        Assert.InRange(s.Memory.Timestamp, t0, t1);
    }

    private static long Now() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;

    /// <summary>The descriptors the daemon has open on files under the container's cgroups.</summary>
    private int OpenCgroupFiles(string id) =>
        Directory.EnumerateFiles($"/proc/{k.Daemon.Process.Id}/fd").Count(fd =>
        {
            try
            {
                return (new FileInfo(fd).LinkTarget ?? "").Contains($"crid-{id}/", StringComparison.Ordinal);
            }
            catch (IOException)
            {
                return false;
            }
        });

    private async Task<ContainerStats> ListedAsync(string id) =>
        Assert.Single((await k.Runtime.ListContainerStatsAsync(new ListContainerStatsRequest { Filter = new ContainerStatsFilter { Id = id } })).Stats);

    [Fact]
    public async Task Listed_figures_are_the_cgroup_files_at_the_call_and_a_removed_container_leaves_nothing_open()
    {
        var idle = await k.RunAsync("list-idle", "sleep 1000");
        var holder = await k.RunAsync("list-holder", "x=$(head -c 33554432 /dev/zero | tr '\\0' a); sleep 1000; true",
            c => c.Linux.Resources.MemoryLimitInBytes = 256L * 1024 * 1024);
        var done = await k.RunAsync("list-done", "true");
        var removed = new HashSet<string>();
        try
        {
            Assert.Equal(ContainerState.ContainerExited, (await k.WaitExitedAsync(done, TimeSpan.FromSeconds(30))).State);
            // The holder's 32 MiB shows in its working set once the shell has it.
            await Eventually(() => ListedAsync(holder), s => s.Memory?.WorkingSetBytes?.Value >= 32ul * 1024 * 1024, TimeSpan.FromSeconds(60));

            // Twice: the second call reads through the files the first one left open.
            for (var round = 0; round < 2; round++)
            {
                var ids = new[] { idle, holder, done };
                var before = ids.ToDictionary(id => id, Read);
                var t0 = Now();
                var listed = (await k.Runtime.ListContainerStatsAsync(new ListContainerStatsRequest
                {
                    Filter = new ContainerStatsFilter { PodSandboxId = k.PodId },
                })).Stats.ToDictionary(s => s.Attributes.Id);
                var t1 = Now();
                var after = ids.ToDictionary(id => id, Read);
                foreach (var id in ids)
                    Matches(before[id], listed[id], after[id], t0, t1);
                Assert.True(listed[holder].Memory.WorkingSetBytes.Value >= 32ul * 1024 * 1024, $"holder: {listed[holder]}");
                Assert.Equal(256ul * 1024 * 1024 - listed[holder].Memory.WorkingSetBytes.Value, listed[holder].Memory.AvailableBytes.Value);
                Assert.Equal("list-holder", listed[holder].Attributes.Metadata.Name);
                Assert.Equal("list-holder", listed[holder].Attributes.Labels["test"]);
                // The stopped container keeps what its cgroup holds until it is removed; its CPU time no longer grows.
                Assert.Equal(before[done].Cpu, after[done].Cpu);
                Assert.NotNull(listed[done].WritableLayer);
            }
            Assert.True(OpenCgroupFiles(idle) > 0, "the daemon reads the cgroup files through kept descriptors");

            // Filters: by id prefix, by pod and label.
            Assert.Equal(idle, Assert.Single((await k.Runtime.ListContainerStatsAsync(new ListContainerStatsRequest
            {
                Filter = new ContainerStatsFilter { Id = idle[..13], PodSandboxId = k.PodId[..10], LabelSelector = { ["test"] = "list-idle" } },
            })).Stats).Attributes.Id);
            Assert.Empty((await k.Runtime.ListContainerStatsAsync(new ListContainerStatsRequest
            {
                Filter = new ContainerStatsFilter { PodSandboxId = "0000" },
            })).Stats);

            // The pod's figures are the sum of its containers' (no cgroup of its own here), each container inside.
            var podBefore = new[] { idle, holder, done }.Select(Read).ToList();
            var pod = Assert.Single((await k.Runtime.ListPodSandboxStatsAsync(new ListPodSandboxStatsRequest
            {
                Filter = new PodSandboxStatsFilter { Id = k.PodId },
            })).Stats);
            var podAfter = new[] { idle, holder, done }.Select(Read).ToList();
            Assert.Equal(k.PodId, pod.Attributes.Id);
            foreach (var id in new[] { idle, holder, done })
                Assert.Contains(pod.Linux.Containers, c => c.Attributes.Id == id);
            var others = pod.Linux.Containers.Where(c => c.Attributes.Id != idle && c.Attributes.Id != holder && c.Attributes.Id != done).ToList();
            ulong Sum(Func<ContainerStats, ulong> f) => (ulong)pod.Linux.Containers.Where(c => c.Memory is not null).Sum(c => (decimal)f(c));
            Assert.Equal(Sum(c => c.Memory.WorkingSetBytes.Value), pod.Linux.Memory.WorkingSetBytes.Value);
            Assert.Equal(Sum(c => c.Cpu?.UsageCoreNanoSeconds.Value ?? 0), pod.Linux.Cpu.UsageCoreNanoSeconds.Value);
            Between((ulong)podBefore.Sum(f => (decimal)f.WorkingSet), Sum(c => others.Contains(c) ? 0 : c.Memory.WorkingSetBytes.Value),
                (ulong)podAfter.Sum(f => (decimal)f.WorkingSet), "pod working set of the three");
            Assert.True(pod.Linux.Process.ProcessCount.Value >= 2, $"{pod.Linux.Process.ProcessCount.Value} processes");

            // A removed container is no longer listed, and the daemon holds nothing of its cgroup open.
            await k.RemoveAsync(idle);
            removed.Add(idle);
            Assert.DoesNotContain((await k.Runtime.ListContainerStatsAsync(new ListContainerStatsRequest())).Stats, s => s.Attributes.Id == idle);
            Assert.Equal(0, OpenCgroupFiles(idle));
            var missing = await Assert.ThrowsAsync<RpcException>(() => k.Runtime.ContainerStatsAsync(new ContainerStatsRequest { ContainerId = idle }).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        }
        finally
        {
            foreach (var id in new[] { idle, holder, done }.Where(id => !removed.Contains(id)))
            {
                await k.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 0 });
                await k.RemoveAsync(id);
            }
        }
    }

    private static async Task<T> Eventually<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var value = await read();
            if (done(value) || watch.Elapsed > timeout)
                return value;
            await Task.Delay(200);
        }
    }
}
