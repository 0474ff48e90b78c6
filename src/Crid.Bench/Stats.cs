namespace Crid.Bench;

/// <summary>Latency samples in milliseconds and their nearest-rank percentiles.</summary>
internal sealed class Samples
{
    private readonly List<double> _ms = [];

    public int Count { get { lock (_ms) return _ms.Count; } }

    public void Add(double ms)
    {
        lock (_ms)
            _ms.Add(ms);
    }

    /// <summary>Nearest rank: the smallest sample with at least p% of the samples at or below it.</summary>
    public double Percentile(double p)
    {
        double[] sorted;
        lock (_ms)
            sorted = [.. _ms];
        if (sorted.Length == 0)
            throw new InvalidOperationException("no samples");
        Array.Sort(sorted);
        var rank = (int)Math.Ceiling(p / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    public double P50 => Percentile(50);
    public double P90 => Percentile(90);
    public double P99 => Percentile(99);
}
