namespace Crid.Core.Networking;

/// <summary>The pod network as `crictl info` shows it: which config is in use, and its plugin chain.</summary>
/// <param name="Name">The network's name; null when there is none.</param>
/// <param name="Plugins">The plugin types, in the order ADD runs them.</param>
public sealed record NetworkInfo(string? Name, string? File, string? CniVersion, IReadOnlyList<string> Plugins);

public static class PodNetworkInfo
{
    public static NetworkInfo Info(this PodNetwork network) =>
        network.Current() is { } n
            ? new NetworkInfo(n.Name, n.File, n.CniVersion, n.Plugins.Select(CniNetwork.TypeOf).ToList())
            : new NetworkInfo(null, null, null, []);
}
