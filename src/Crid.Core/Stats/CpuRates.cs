using System.Collections.Concurrent;

namespace Crid.Core.Stats;

/// <summary>
/// CPU usage as a rate (CRI <c>usage_nano_cores</c>: CPU-nanoseconds per second of wall time),
/// from two samples of the cumulative counter. One baseline is kept per object (container or pod);
/// it moves forward only once a sample is at least <see cref="MinWindow"/> newer, so several
/// pollers (kubelet, crictl, a monitoring agent) reading close together still get a rate over a
/// window long enough to mean something instead of over the few milliseconds between them.
/// </summary>
public sealed class CpuRates
{
    /// <summary>The shortest window a baseline is replaced after.</summary>
    public static readonly TimeSpan MinWindow = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, CpuSample> _baselines = new(StringComparer.Ordinal);

    public int Count => _baselines.Count;

    /// <summary>
    /// The rate between the baseline of <paramref name="key"/> and <paramref name="current"/>, in
    /// nano-cores; null for the first sample, or when the counter went back (a new cgroup under the
    /// same key) or no time passed.
    /// </summary>
    public ulong? Rate(string key, CpuSample current)
    {
        ulong? rate = null;
        _baselines.AddOrUpdate(key, current, (_, baseline) =>
        {
            var elapsed = current.Timestamp - baseline.Timestamp;
            if (current.UsageNanoseconds < baseline.UsageNanoseconds)
            {
                rate = null;
                return current;
            }
            rate = elapsed > 0
                ? (ulong)((double)(current.UsageNanoseconds - baseline.UsageNanoseconds) * 1e9 / elapsed)
                : null;
            return elapsed >= MinWindow.Ticks * 100 ? current : baseline;
        });
        return rate;
    }

    /// <summary>Drops the baseline of a removed object.</summary>
    public void Forget(string key) => _baselines.TryRemove(key, out _);
}
