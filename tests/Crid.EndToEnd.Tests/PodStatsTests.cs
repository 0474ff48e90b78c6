using System.Diagnostics;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>PodSandboxStats and ListPodSandboxStats over the socket: a pod's own cgroup and its interfaces.</summary>
public sealed class PodStatsTests
{
    /// <summary>
    /// A cgroup standing in for kubelet's pod cgroup (kubelet makes /kubepods/.../pod&lt;uid&gt; and
    /// passes it as cgroup_parent), at the top of each hierarchy crid reads, with a sleep inside.
    /// </summary>
    private sealed class PodCgroup : IDisposable
    {
        private readonly List<string> _dirs = [];
        private readonly Process _sleep;

        public PodCgroup()
        {
            Path = "/crid-podstats-" + Guid.NewGuid().ToString("N")[..12];
            var unified = File.ReadAllLines("/proc/self/mountinfo").Any(l => l.Split(' ')[4] == "/sys/fs/cgroup" && l.Contains(" - cgroup2 "));
            var roots = unified ? ["/sys/fs/cgroup"] : new[] { "cpuacct", "memory", "pids" }.Select(c => "/sys/fs/cgroup/" + c).Where(Directory.Exists).ToList();
            foreach (var root in roots)
            {
                var dir = root + Path;
                Directory.CreateDirectory(dir);
                _dirs.Add(dir);
            }
            var args = new List<string> { "-c", "for f in \"$@\"; do echo $$ > \"$f\"; done; exec sleep 300", "sh" };
            args.AddRange(_dirs.Select(d => d + "/cgroup.procs"));
            _sleep = Process.Start("/bin/sh", args);
            var deadline = Stopwatch.StartNew();
            while (_dirs.Any(d => File.ReadAllText(d + "/cgroup.procs").Trim().Length == 0) && deadline.Elapsed < TimeSpan.FromSeconds(10))
                Thread.Sleep(10);
        }

        public string Path { get; }

        public void Dispose()
        {
            _sleep.Kill();
            _sleep.WaitForExit();
            foreach (var dir in _dirs)
            {
                var deadline = Stopwatch.StartNew();
                while (File.ReadAllText(dir + "/cgroup.procs").Trim().Length > 0 && deadline.Elapsed < TimeSpan.FromSeconds(10))
                    Thread.Sleep(10);
                Directory.Delete(dir);
            }
        }
    }

    private static async Task<string> NetPin(DaemonProcess d, string id)
    {
        var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true });
        using var info = System.Text.Json.JsonDocument.Parse(status.Info["info"]);
        return info.RootElement.GetProperty("pins").GetProperty("net").GetString()!;
    }

    [Fact]
    public async Task A_pods_stats_come_from_its_cgroup_and_its_own_interfaces_with_their_times()
    {
        using var cgroup = new PodCgroup();
        await using var d = await DaemonProcess.StartAsync();
        var config = SandboxTests.Minimal("stats-web");
        config.Linux.CgroupParent = cgroup.Path;
        config.Labels["tier"] = "web";
        config.Annotations["note"] = "kept";
        var web = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
        var other = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("stats-other", NamespaceMode.Container) })).PodSandboxId;
        try
        {
            // An eth0 wholly inside the pod (a veth pair, both ends there, nothing on the host), and two 1000-byte pings out of it.
            var pin = await NetPin(d, web);
            foreach (var args in new[]
            {
                new[] { "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0" },
                ["ip", "addr", "add", "10.254.78.1/24", "dev", "eth0"],
                ["ip", "link", "set", "peer0", "up"],
                ["ip", "link", "set", "eth0", "up"],
                ["ip", "neigh", "add", "10.254.78.2", "lladdr", "02:00:00:00:00:02", "dev", "eth0"],
                // Two echo requests of 1000 bytes of payload; nobody answers, which does not matter.
                ["busybox", "ping", "-c", "2", "-i", "0.2", "-W", "1", "-s", "1000", "10.254.78.2"],
            })
                Tool.Run(false, ["nsenter", $"--net={pin}", .. args]);

            var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
            var stats = (await d.Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = web[..12] })).Stats;
            Assert.Equal(web, stats.Attributes.Id);
            Assert.Equal("stats-web", stats.Attributes.Metadata.Name);
            Assert.Equal("web", stats.Attributes.Labels["tier"]);
            Assert.Equal("kept", stats.Attributes.Annotations["note"]);
            var linux = stats.Linux;
            // The pod cgroup holds one sleeping process (crid's infra process lives in crid's own cgroup).
            Assert.Equal(1UL, linux.Process.ProcessCount.Value);
            Assert.True(linux.Cpu.Timestamp >= before, "the CPU figure is older than the call");
            Assert.NotNull(linux.Cpu.UsageCoreNanoSeconds);
            Assert.True(linux.Memory.WorkingSetBytes.Value > 0);
            Assert.True(linux.Memory.Timestamp >= before);
            Assert.Equal("eth0", linux.Network.DefaultInterface.Name);
            Assert.InRange(linux.Network.DefaultInterface.TxBytes.Value, 2000UL, 4000UL);
            Assert.Equal(0UL, linux.Network.DefaultInterface.RxErrors.Value);
            Assert.Equal(["peer0"], linux.Network.Interfaces.Select(i => i.Name));
            Assert.True(linux.Network.Timestamp >= before);
            Assert.Empty(linux.Containers);

            // Two samples a second apart: the rate of a sleeping pod is known, and small.
            await Task.Delay(1100);
            var again = (await d.Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = web })).Stats.Linux.Cpu;
            Assert.True(again.Timestamp > linux.Cpu.Timestamp);
            Assert.True(again.UsageNanoCores.Value < 100_000_000, $"a sleeping pod used {again.UsageNanoCores.Value} nano-cores");

            // The list: every ready pod, or those the filter names.
            var all = (await d.Runtime.ListPodSandboxStatsAsync(new ListPodSandboxStatsRequest())).Stats;
            Assert.Equal(new[] { web, other }.Order(), all.Select(s => s.Attributes.Id).Order());
            var byLabel = new ListPodSandboxStatsRequest { Filter = new PodSandboxStatsFilter { LabelSelector = { ["tier"] = "web" } } };
            Assert.Equal([web], (await d.Runtime.ListPodSandboxStatsAsync(byLabel)).Stats.Select(s => s.Attributes.Id));
            var byId = new ListPodSandboxStatsRequest { Filter = new PodSandboxStatsFilter { Id = other[..10] } };
            Assert.Equal([other], (await d.Runtime.ListPodSandboxStatsAsync(byId)).Stats.Select(s => s.Attributes.Id));
            // A pod without a cgroup of its own or containers: no figures to sum but a count of none.
            var bare = (await d.Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = other })).Stats.Linux;
            Assert.Null(bare.Cpu);
            Assert.Equal(0UL, bare.Process.ProcessCount.Value);
            // Loopback only: no default interface, nothing else.
            Assert.Null(bare.Network.DefaultInterface);
            Assert.Empty(bare.Network.Interfaces);

            // A stopped pod is not listed; asked for by id, it has its identity and no network.
            await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = other });
            Assert.Equal([web], (await d.Runtime.ListPodSandboxStatsAsync(new ListPodSandboxStatsRequest())).Stats.Select(s => s.Attributes.Id));
            var stopped = (await d.Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = other })).Stats;
            Assert.Equal(other, stopped.Attributes.Id);
            Assert.Null(stopped.Linux.Network);

            var missing = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = "feedbeef" }).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, missing.StatusCode);
            var empty = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest()).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
            Assert.Contains("pod_sandbox_id", empty.Status.Detail);
        }
        finally
        {
            foreach (var id in new[] { web, other })
                await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        }
    }
}
