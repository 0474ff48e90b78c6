using Crid.Core.Stats;

namespace Crid.Core.Tests;

/// <summary>
/// The cgroup readers on fixture trees (testdata/cgroups) of the three layouts runc meets: legacy
/// v1 (cpu and cpuacct co-mounted, no pids controller), this machine's hybrid layout, and v2.
/// </summary>
public sealed class CgroupStatsTests
{
    private const string Id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private const long Now = 1_700_000_000_123_456_789;

    private static CgroupLayout Layout(string name)
    {
        var root = Path.Combine(TestData.Dir, "cgroups", name);
        return CgroupLayout.Parse(File.ReadAllLines(Path.Combine(root, "mountinfo")), File.ReadAllLines(Path.Combine(root, "self-cgroup")), root);
    }

    private static string Fixture(string name, string path) => Path.Combine(TestData.Dir, "cgroups", name) + path;

    private static readonly CgroupStatsReader Reader = new(() => Now);

    [Fact]
    public void The_hybrid_layout_is_read_from_the_v1_controllers_as_runc_places_containers_there()
    {
        var layout = Layout("hybrid");
        Assert.Equal(CgroupMode.Hybrid, layout.Mode);
        Assert.Equal(Fixture("hybrid", "/sys/fs/cgroup/unified"), layout.UnifiedMount);
        Assert.Equal(Fixture("hybrid", "/sys/fs/cgroup/cpuacct"), layout.V1Mounts["cpuacct"]);
        Assert.False(layout.V1Mounts.ContainsKey("name=systemd"));
        Assert.False(layout.V1Mounts.ContainsKey("rw"));

        var dirs = layout.Resolve($"/crid/crid-{Id}");
        Assert.Equal(Fixture("hybrid", $"/sys/fs/cgroup/memory/crid/crid-{Id}"), dirs.Memory);
        Assert.Equal(Fixture("hybrid", $"/sys/fs/cgroup/pids/crid/crid-{Id}"), dirs.Pids);
        Assert.Equal(Fixture("hybrid", $"/sys/fs/cgroup/unified/crid/crid-{Id}"), dirs.Unified);

        var sample = Reader.Read(dirs);
        // cpuacct.usage, not the unified mount's cpu.stat.
        Assert.Equal(new CpuSample(Now, 16347490860811), sample.Cpu);
        var m = sample.Memory!;
        Assert.Equal(Now, m.Timestamp);
        Assert.Equal(73400320UL, m.UsageBytes);
        // usage − total_inactive_file (the hierarchical key, not inactive_file).
        Assert.Equal(73400320UL - 5242880, m.WorkingSetBytes);
        Assert.Equal(67108864UL, m.RssBytes);
        Assert.Equal(17012UL, m.PageFaults);
        Assert.Equal(3UL, m.MajorPageFaults);
        Assert.Equal(134217728UL, m.LimitBytes);
        Assert.Equal(134217728UL - (73400320UL - 5242880), m.AvailableBytes);
        Assert.Equal(new ProcessSample(Now, 3), sample.Processes);
    }

    [Fact]
    public void A_relative_path_is_below_the_daemons_own_cgroup_in_v1_and_below_its_parent_in_v2()
    {
        var hybrid = Layout("hybrid").Resolve($"rel/crid-{Id}");
        Assert.Equal(Fixture("hybrid", $"/sys/fs/cgroup/memory/system/crid/rel/crid-{Id}"), hybrid.Memory);
        Assert.Equal(Fixture("hybrid", $"/sys/fs/cgroup/cpuacct/system/crid/rel/crid-{Id}"), hybrid.Cpuacct);
        Assert.Equal(4096UL, Reader.Memory(hybrid)!.UsageBytes);

        var v2 = Layout("v2").Resolve($"rel/crid-{Id}");
        Assert.Equal(Fixture("v2", $"/sys/fs/cgroup/system.slice/rel/crid-{Id}"), v2.Unified);
        Assert.Equal(7000UL, Reader.Cpu(v2)!.UsageNanoseconds);
    }

    [Fact]
    public void Legacy_v1_with_cpu_and_cpuacct_together_and_no_pids_controller_counts_the_members_of_the_tree()
    {
        var layout = Layout("v1");
        Assert.Equal(CgroupMode.Legacy, layout.Mode);
        Assert.Null(layout.UnifiedMount);
        Assert.Equal(layout.V1Mounts["cpu"], layout.V1Mounts["cpuacct"]);

        var pod = layout.Resolve("/kubepods/burstable/pod7f3e/");
        Assert.Null(pod.Pids);
        Assert.Null(pod.Unified);
        var sample = Reader.Read(pod);
        Assert.Equal(5_000_000_000UL, sample.Cpu!.UsageNanoseconds);
        // The pod's own cgroup.procs is empty: its processes are its containers'.
        Assert.Equal(3UL, sample.Processes!.Count);
        var m = sample.Memory!;
        // More inactive file than usage (the two are read at different instants): zero, not a wrap-around.
        Assert.Equal(0UL, m.WorkingSetBytes);
        // v1's "unlimited" is no limit at all: no available bytes, as kubelet leaves them.
        Assert.Null(m.LimitBytes);
        Assert.Null(m.AvailableBytes);

        Assert.Equal(2_000_000_000UL, Reader.Cpu(layout.Resolve("/kubepods/burstable/pod7f3e/crid-a"))!.UsageNanoseconds);
    }

    [Fact]
    public void V2_reads_cpu_stat_memory_current_and_memory_stat_from_one_folder()
    {
        var layout = Layout("v2");
        Assert.Equal(CgroupMode.Unified, layout.Mode);
        Assert.Empty(layout.V1Mounts);
        var dirs = layout.Resolve($"/crid/crid-{Id}");
        Assert.Null(dirs.Memory);
        Assert.Equal(Fixture("v2", $"/sys/fs/cgroup/crid/crid-{Id}"), dirs.Unified);

        var sample = Reader.Read(dirs);
        Assert.Equal(new CpuSample(Now, 2_500_000_000), sample.Cpu);
        var m = sample.Memory!;
        Assert.Equal(52428800UL, m.UsageBytes);
        Assert.Equal(52428800UL - 8388608, m.WorkingSetBytes);
        Assert.Equal(41943040UL, m.RssBytes);
        Assert.Equal(12800UL, m.PageFaults);
        Assert.Equal(4UL, m.MajorPageFaults);
        // memory.max "max": no limit.
        Assert.Null(m.LimitBytes);
        Assert.Equal(new ProcessSample(Now, 2), sample.Processes);
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("hybrid")]
    [InlineData("v2")]
    public void A_cgroup_that_is_not_there_has_no_figures(string layout)
    {
        var sample = Reader.Read(Layout(layout).Resolve("/crid/crid-gone"));
        Assert.Equal(new CgroupSample(null, null, null), sample);
    }

    [Fact]
    public void A_path_climbing_out_of_the_hierarchy_is_refused()
    {
        Assert.Throws<ArgumentException>(() => Layout("hybrid").Resolve("/crid/../../etc"));
    }

    [Fact]
    public void This_hosts_layout_is_the_one_runc_uses()
    {
        var host = CgroupLayout.FromHost();
        var facts = Oci.LinuxHostFacts.Instance.Cgroups;
        Assert.Equal(facts.Unified, host.Mode == CgroupMode.Unified);
        if (host.Mode != CgroupMode.Unified)
            Assert.True(host.V1Mounts.ContainsKey("memory"), "a v1 host without the memory controller");
    }

    [Fact]
    public void Flat_keyed_files_skip_what_is_not_a_number()
    {
        var values = new ulong[4];
        var found = CgroupFiles.Keyed("a 1\nb x\n\nc  3\nsome avg10=0.00\n"u8, ["a"u8.ToArray(), "b"u8.ToArray(), "c"u8.ToArray(), "some"u8.ToArray()], values);
        Assert.Equal(2, found);
        Assert.Equal([1UL, 0, 3, 0], values);
    }
}
