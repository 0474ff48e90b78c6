using System.Globalization;
using Crid.Linux;

namespace Crid.Core.Stats;

/// <summary>The cumulative counters of one network interface.</summary>
public sealed record InterfaceCounters(string Name, ulong RxBytes, ulong RxErrors, ulong TxBytes, ulong TxErrors);

/// <summary>A pod's interfaces at one moment: the default one (CRI's default_interface) apart from the others; loopback is left out.</summary>
public sealed record NetworkSample(long Timestamp, InterfaceCounters? Default, IReadOnlyList<InterfaceCounters> Others);

/// <summary>
/// A pod's network counters, read from /proc/net/dev inside its network namespace (see
/// <see cref="NetNamespaceFiles"/>: on a namespace worker, never on a thread-pool thread).
/// </summary>
public sealed class NetworkStatsReader(Func<long>? clock = null)
{
    private readonly Func<long> _clock = clock ?? UnixClock.Now;

    /// <summary>The counters of the namespace pinned at <paramref name="netnsPath"/>; null when the pin is gone.</summary>
    /// <param name="defaultInterface">the pod's interface (CNI's eth0; kubelet's default interface name).</param>
    public async Task<NetworkSample?> ReadAsync(string netnsPath, string defaultInterface)
    {
        string text;
        try
        {
            text = await NetNamespaceFiles.ReadProcNetAsync(netnsPath, "dev").ConfigureAwait(false);
        }
        catch (SyscallException)
        {
            // The pod was stopped meanwhile: its namespace is unpinned, and it has no network to count.
            return null;
        }
        var now = _clock();
        return Split(now, NetDev.Parse(text), defaultInterface);
    }

    public static NetworkSample Split(long timestamp, IEnumerable<InterfaceCounters> interfaces, string defaultInterface)
    {
        InterfaceCounters? main = null;
        var others = new List<InterfaceCounters>();
        foreach (var i in interfaces)
        {
            if (i.Name == "lo")
                continue;
            if (i.Name == defaultInterface)
                main = i;
            else
                others.Add(i);
        }
        return new NetworkSample(timestamp, main, others);
    }
}

/// <summary>The format of /proc/net/dev (proc(5)): two header lines, then "name: 8 receive counters 8 transmit counters".</summary>
public static class NetDev
{
    public static List<InterfaceCounters> Parse(string text)
    {
        var result = new List<InterfaceCounters>();
        foreach (var line in text.Split('\n'))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0)
                continue;
            var name = line[..colon].Trim();
            var fields = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs ...
            if (name.Length == 0 || fields.Length < 16 || !TryNumbers(fields, out var n))
                continue;
            result.Add(new InterfaceCounters(name, n[0], n[2], n[8], n[10]));
        }
        return result;
    }

    private static bool TryNumbers(string[] fields, out ulong[] numbers)
    {
        numbers = new ulong[fields.Length];
        for (var i = 0; i < fields.Length; i++)
        {
            if (!ulong.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out numbers[i]))
                return false;
        }
        return true;
    }
}
