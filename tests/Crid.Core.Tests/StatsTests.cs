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
}
