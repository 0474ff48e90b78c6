using Crid.Core.Sandboxes;
using Crid.Core.Stats;
using Crid.Core.Stores;
using Runtime.V1;

namespace Crid.Core.Tests;

/// <summary>ContainerStats and PodSandboxStats assembled from the fixture cgroups (testdata/cgroups) and a real folder for the layer.</summary>
public sealed class StatsCollectorTests : IDisposable
{
    private const string Id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-statscollector-").FullName;
    private long _now = 1_000_000_000_000;

    public void Dispose() => Directory.Delete(_dir, true);

    private StatsCollector Collector(string layout)
    {
        var root = Path.Combine(TestData.Dir, "cgroups", layout);
        var cgroups = CgroupLayout.Parse(File.ReadAllLines(Path.Combine(root, "mountinfo")), File.ReadAllLines(Path.Combine(root, "self-cgroup")), root);
        return new StatsCollector(cgroups, new CgroupStatsReader(() => _now), new CpuRates(), new WritableLayerStats(TimeSpan.FromSeconds(10), clock: () => _now),
            new NetworkStatsReader(() => _now));
    }

    private static ContainerStatsSource Source(string id, string cgroupsPath, string? upper) =>
        new(id, new ContainerMetadata { Name = "app", Attempt = 1 }, new Dictionary<string, string> { ["l"] = "1" }, new Dictionary<string, string> { ["a"] = "2" }, cgroupsPath, upper);

    private Sandbox Pod(string cgroupParent, SandboxState state = SandboxState.Ready) => new()
    {
        Id = "p" + new string('0', 63),
        Name = "k8s_web_ns_uid_0",
        Config = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = "web", Namespace = "ns", Uid = "uid" },
            Labels = { ["app"] = "web" },
            Linux = new LinuxPodSandboxConfig { CgroupParent = cgroupParent, SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Node } } },
        },
        CreatedAt = 1,
        RuntimeHandler = "",
        Hostname = "web",
        Uuid = "",
        Pins = new Dictionary<string, string>(),
        Dir = _dir,
        Status = StatusStorage<SandboxStatus>.InMemory(new SandboxStatus { State = state }),
    };

    [Fact]
    public async Task A_running_container_has_its_identity_cpu_memory_and_writable_layer_each_with_its_time()
    {
        var upper = Directory.CreateDirectory(Path.Combine(_dir, "upper")).FullName;
        File.WriteAllBytes(Path.Combine(upper, "written"), new byte[100_000]);
        var collector = Collector("hybrid");
        var stats = await collector.ContainerAsync(Source(Id, $"/crid/crid-{Id}", upper));

        Assert.Equal(Id, stats.Attributes.Id);
        Assert.Equal("app", stats.Attributes.Metadata.Name);
        Assert.Equal("1", stats.Attributes.Labels["l"]);
        Assert.Equal("2", stats.Attributes.Annotations["a"]);
        Assert.Equal(_now, stats.Cpu.Timestamp);
        Assert.Equal(16347490860811UL, stats.Cpu.UsageCoreNanoSeconds.Value);
        // The first sample has no rate yet.
        Assert.Null(stats.Cpu.UsageNanoCores);
        Assert.Equal(_now, stats.Memory.Timestamp);
        Assert.Equal(73400320UL - 5242880, stats.Memory.WorkingSetBytes.Value);
        Assert.Equal(_now, stats.WritableLayer.Timestamp);
        // The folder and the file: 100 000 bytes take at least 25 blocks of 4 KiB.
        Assert.Equal(2UL, stats.WritableLayer.InodesUsed.Value);
        Assert.InRange(stats.WritableLayer.UsedBytes.Value, 100_000UL, 200_000UL);
        Assert.NotEmpty(stats.WritableLayer.FsId.Mountpoint);

        // A second read reuses the walk within its age (its time says so), and the CPU counter has not moved: rate 0.
        File.WriteAllBytes(Path.Combine(upper, "more"), new byte[100_000]);
        var measuredAt = _now;
        _now += 2_000_000_000;
        stats = await collector.ContainerAsync(Source(Id, $"/crid/crid-{Id}", upper));
        Assert.Equal(0UL, stats.Cpu.UsageNanoCores.Value);
        Assert.Equal(measuredAt, stats.WritableLayer.Timestamp);
        Assert.Equal(2UL, stats.WritableLayer.InodesUsed.Value);
        // Past its age it is measured again.
        _now += 10_000_000_000;
        stats = await collector.ContainerAsync(Source(Id, $"/crid/crid-{Id}", upper));
        Assert.Equal(_now, stats.WritableLayer.Timestamp);
        Assert.Equal(3UL, stats.WritableLayer.InodesUsed.Value);
    }

    [Fact]
    public async Task A_container_without_a_cgroup_or_layer_has_its_identity_only()
    {
        var stats = await Collector("hybrid").ContainerAsync(Source("c2", "/crid/crid-c2", Path.Combine(_dir, "no-such-upper")));
        Assert.Equal("c2", stats.Attributes.Id);
        Assert.Null(stats.Cpu);
        Assert.Null(stats.Memory);
        Assert.Null(stats.WritableLayer);
    }

    [Fact]
    public async Task A_pod_with_a_cgroup_of_its_own_is_read_from_it_with_its_containers_inside()
    {
        var collector = Collector("v1");
        var stats = await collector.PodAsync(Pod("/kubepods/burstable/pod7f3e"),
            [Source("a", "/kubepods/burstable/pod7f3e/crid-a", null), Source("b", "/kubepods/burstable/pod7f3e/crid-b", null)]);
        Assert.Equal("uid", stats.Attributes.Metadata.Uid);
        Assert.Equal("web", stats.Attributes.Labels["app"]);
        // The pod cgroup's own counter (it includes what exited containers used), not the containers' sum.
        Assert.Equal(5_000_000_000UL, stats.Linux.Cpu.UsageCoreNanoSeconds.Value);
        Assert.Equal(3UL, stats.Linux.Process.ProcessCount.Value);
        Assert.Equal(["a", "b"], stats.Linux.Containers.Select(c => c.Attributes.Id));
        Assert.Equal(3_000_000_000UL, stats.Linux.Containers[1].Cpu.UsageCoreNanoSeconds.Value);
        // Host network: no interfaces of its own to count.
        Assert.Null(stats.Linux.Network);
    }

    [Fact]
    public async Task A_pod_without_a_cgroup_of_its_own_is_the_sum_of_its_containers()
    {
        var collector = Collector("v1");
        var stats = await collector.PodAsync(Pod(""),
            [Source("a", "/kubepods/burstable/pod7f3e/crid-a", null), Source("b", "/kubepods/burstable/pod7f3e/crid-b", null)]);
        Assert.Equal(5_000_000_000UL, stats.Linux.Cpu.UsageCoreNanoSeconds.Value);
        Assert.Equal(_now, stats.Linux.Cpu.Timestamp);
        // No memory controller folders for the containers in this fixture: no memory figures to add up.
        Assert.Null(stats.Linux.Memory);
        // The pod without containers.
        var empty = await collector.PodAsync(Pod(""), []);
        Assert.Null(empty.Linux.Cpu);
        Assert.Equal(0UL, empty.Linux.Process.ProcessCount.Value);
    }
    /// <summary>The hybrid fixture copied under the test's folder, so its files can be rewritten; its collector.</summary>
    private (StatsCollector Collector, string Root) WritableHybrid()
    {
        var from = Path.Combine(TestData.Dir, "cgroups", "hybrid");
        var root = Path.Combine(_dir, "hybrid");
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(root, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to);
        }
        var cgroups = CgroupLayout.Parse(File.ReadAllLines(Path.Combine(root, "mountinfo")), File.ReadAllLines(Path.Combine(root, "self-cgroup")), root);
        return (new StatsCollector(cgroups, new CgroupStatsReader(() => _now), new CpuRates(), new WritableLayerStats(TimeSpan.FromSeconds(10), clock: () => _now),
            new NetworkStatsReader(() => _now)), root);
    }

    [Fact]
    public async Task Kept_files_give_the_figures_of_each_call_and_go_with_the_container()
    {
        var (collector, root) = WritableHybrid();
        var memory = Path.Combine(root, $"sys/fs/cgroup/memory/crid/crid-{Id}");
        var kept = Crid.Linux.RereadFile.Kept;
        var first = Assert.Single(await collector.ContainersAsync([Source(Id, $"/crid/crid-{Id}", null)]));
        Assert.Equal(16347490860811UL, first.Cpu.UsageCoreNanoSeconds.Value);
        Assert.Equal(1, collector.KeptCount);
        Assert.True(Crid.Linux.RereadFile.Kept > kept);

        // Rewritten in place (as the kernel's figures change under a kept descriptor): the next call reads the new figures.
        File.WriteAllText(Path.Combine(root, $"sys/fs/cgroup/cpuacct/crid/crid-{Id}/cpuacct.usage"), "16348490860811\n");
        File.WriteAllText(Path.Combine(memory, "memory.usage_in_bytes"), "83886080\n");
        File.WriteAllText(Path.Combine(memory, "memory.stat"), File.ReadAllText(Path.Combine(memory, "memory.stat"))
            .Replace("total_inactive_file 5242880", "total_inactive_file 1048576").Replace("total_pgfault 17012", "total_pgfault 20000"));
        File.WriteAllText(Path.Combine(memory, "memory.limit_in_bytes"), "9223372036854771712\n");
        _now += 2_000_000_000;
        var second = Assert.Single(await collector.ContainersAsync([Source(Id, $"/crid/crid-{Id}", null)]));
        Assert.Equal(16348490860811UL, second.Cpu.UsageCoreNanoSeconds.Value);
        Assert.Equal(500_000_000UL, second.Cpu.UsageNanoCores.Value);
        Assert.Equal(_now, second.Cpu.Timestamp);
        Assert.Equal(83886080UL, second.Memory.UsageBytes.Value);
        Assert.Equal(83886080UL - 1048576, second.Memory.WorkingSetBytes.Value);
        Assert.Equal(20000UL, second.Memory.PageFaults.Value);
        Assert.Equal(67108864UL, second.Memory.RssBytes.Value);
        // v1's "no limit": no available bytes, as kubelet leaves them.
        Assert.Null(second.Memory.AvailableBytes);
        // The attributes are built once and shared by the answers.
        Assert.Same(first.Attributes, second.Attributes);

        // Removed: nothing held open for it (a removed cgroup's kept files are tested on real cgroups:
        // StatsPrimitivesTests and the end-to-end StatsListTests).
        collector.Forget(Id);
        Assert.Equal(0, collector.KeptCount);
        Assert.Equal(kept, Crid.Linux.RereadFile.Kept);
    }

    [Fact]
    public async Task A_long_list_is_read_in_two_halves_and_answered_in_order()
    {
        var collector = Collector("hybrid");
        var sources = Enumerable.Range(0, StatsCollector.ParallelFrom * 2 + 1).Select(i => Source($"c{i}", $"/crid/crid-{Id}", null)).ToList();
        var stats = await collector.ContainersAsync(sources);
        Assert.Equal(sources.Select(s => s.Id), stats.Select(s => s.Attributes.Id));
        Assert.All(stats, s => Assert.Equal(16347490860811UL, s.Cpu.UsageCoreNanoSeconds.Value));
        Assert.All(stats, s => Assert.Equal(73400320UL - 5242880, s.Memory.WorkingSetBytes.Value));
        foreach (var s in sources)
            collector.Forget(s.Id);
        Assert.Equal(0, collector.KeptCount);
    }
}
