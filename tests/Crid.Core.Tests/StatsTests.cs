using Crid.Core.Stats;

namespace Crid.Core.Tests;

/// <summary>CPU rates, /proc/net/dev and the network split: pure logic on fixtures.</summary>
public sealed class StatsTests
{
    private const long Second = 1_000_000_000;

    [Fact]
    public void The_cpu_rate_is_usage_over_wall_time_against_a_baseline_at_least_a_second_old()
    {
        var rates = new CpuRates();
        Assert.Null(rates.Rate("c", new CpuSample(10 * Second, 1 * Second)));
        // Half a core over two seconds.
        Assert.Equal(500_000_000UL, rates.Rate("c", new CpuSample(12 * Second, 2 * Second)));
        // 10 ms later: measured against the baseline of 12 s (the 2 s window is kept), not over 10 ms.
        Assert.Equal(1_000_000_000UL, rates.Rate("c", new CpuSample(12 * Second + 10_000_000, 2 * Second + 10_000_000)));
        // A poller 200 ms later still measures from 12 s: the 10 ms sample did not become the baseline.
        Assert.Equal(250_000_000UL, rates.Rate("c", new CpuSample(12 * Second + 200_000_000, 2 * Second + 50_000_000)));
        // Other keys are apart.
        Assert.Null(rates.Rate("d", new CpuSample(12 * Second, 0)));
        Assert.Equal(2, rates.Count);
    }

    [Fact]
    public void A_counter_that_went_back_is_a_new_cgroup_and_gives_no_rate()
    {
        var rates = new CpuRates();
        rates.Rate("c", new CpuSample(10 * Second, 5 * Second));
        Assert.Null(rates.Rate("c", new CpuSample(12 * Second, 1 * Second)));
        Assert.Equal(1_000_000_000UL, rates.Rate("c", new CpuSample(13 * Second, 2 * Second)));
        Assert.Null(rates.Rate("c", new CpuSample(13 * Second, 2 * Second)));
        rates.Forget("c");
        Assert.Equal(0, rates.Count);
    }

    [Fact]
    public void Proc_net_dev_gives_bytes_and_errors_of_each_interface_and_skips_what_it_cannot_read()
    {
        var text = File.ReadAllText(Path.Combine(TestData.Dir, "net", "proc-net-dev"));
        var interfaces = NetDev.Parse(text);
        Assert.Equal(
        [
            new InterfaceCounters("lo", 1500, 0, 1500, 0),
            new InterfaceCounters("eth0", 285609588, 2, 295601, 1),
            new InterfaceCounters("net1", 4096, 0, 8192, 0),
        ], interfaces);

        var sample = NetworkStatsReader.Split(42, interfaces, "eth0");
        Assert.Equal(42, sample.Timestamp);
        Assert.Equal("eth0", sample.Default!.Name);
        // The default interface is not repeated among the others, and loopback is no pod traffic.
        Assert.Equal(["net1"], sample.Others.Select(i => i.Name));
        Assert.Null(NetworkStatsReader.Split(42, interfaces, "eth9").Default);
    }

    [Fact]
    public void Cri_messages_leave_unknown_figures_unset_and_carry_their_sample_times()
    {
        var cpu = CriStats.Cpu(new CpuSample(5, 700), null);
        Assert.Equal(5, cpu.Timestamp);
        Assert.Equal(700UL, cpu.UsageCoreNanoSeconds.Value);
        Assert.Null(cpu.UsageNanoCores);
        Assert.Equal(3UL, CriStats.Cpu(new CpuSample(5, 700), 3).UsageNanoCores.Value);

        var unlimited = CriStats.Memory(new MemorySample { Timestamp = 6, UsageBytes = 10, WorkingSetBytes = 8, RssBytes = 4, PageFaults = 2, MajorPageFaults = 1 });
        Assert.Equal((6L, 8UL, 10UL, 4UL, 2UL, 1UL), (unlimited.Timestamp, unlimited.WorkingSetBytes.Value, unlimited.UsageBytes.Value, unlimited.RssBytes.Value, unlimited.PageFaults.Value, unlimited.MajorPageFaults.Value));
        Assert.Null(unlimited.AvailableBytes);
        Assert.Equal(92UL, CriStats.Memory(new MemorySample { Timestamp = 6, UsageBytes = 10, WorkingSetBytes = 8, RssBytes = 4, PageFaults = 2, MajorPageFaults = 1, LimitBytes = 100 }).AvailableBytes.Value);

        var fs = CriStats.Filesystem(new LayerUsage(7, "/var/lib", 4096, 3, false));
        Assert.Equal((7L, "/var/lib", 4096UL, 3UL), (fs.Timestamp, fs.FsId.Mountpoint, fs.UsedBytes.Value, fs.InodesUsed.Value));

        var net = CriStats.Network(new NetworkSample(8, new InterfaceCounters("eth0", 1, 2, 3, 4), [new InterfaceCounters("net1", 5, 6, 7, 8)]));
        Assert.Equal((8L, "eth0", 1UL, 2UL, 3UL, 4UL), (net.Timestamp, net.DefaultInterface.Name, net.DefaultInterface.RxBytes.Value, net.DefaultInterface.RxErrors.Value, net.DefaultInterface.TxBytes.Value, net.DefaultInterface.TxErrors.Value));
        Assert.Equal("net1", Assert.Single(net.Interfaces).Name);
        Assert.Null(CriStats.Network(new NetworkSample(8, null, [])).DefaultInterface);
    }

    [Fact]
    public void A_pod_without_a_cgroup_of_its_own_is_the_sum_of_its_containers()
    {
        var a = new CgroupSample(new CpuSample(10, 100), new MemorySample { Timestamp = 11, UsageBytes = 50, WorkingSetBytes = 40, RssBytes = 30, PageFaults = 2, MajorPageFaults = 1, LimitBytes = 64 }, new ProcessSample(12, 1));
        var b = new CgroupSample(new CpuSample(20, 300), new MemorySample { Timestamp = 21, UsageBytes = 5, WorkingSetBytes = 4, RssBytes = 3, PageFaults = 20, MajorPageFaults = 10 }, new ProcessSample(22, 2));
        // An exited container has no cgroup: it adds nothing.
        var gone = new CgroupSample(null, null, null);
        var sum = CriStats.Sum([a, b, gone], now: 99);
        Assert.Equal(new CpuSample(20, 400), sum.Cpu);
        Assert.Equal((21L, 55UL, 44UL, 33UL, 22UL, 11UL), (sum.Memory!.Timestamp, sum.Memory.UsageBytes, sum.Memory.WorkingSetBytes, sum.Memory.RssBytes, sum.Memory.PageFaults, sum.Memory.MajorPageFaults));
        Assert.Null(sum.Memory.LimitBytes);
        Assert.Equal(new ProcessSample(22, 3), sum.Processes);
        Assert.Equal(new CgroupSample(null, null, new ProcessSample(99, 0)), CriStats.Sum([gone], 99));
    }
}
