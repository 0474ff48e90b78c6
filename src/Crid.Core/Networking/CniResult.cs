using System.Text.Json.Nodes;

namespace Crid.Core.Networking;

/// <summary>Reads the pod's addresses out of a CNI result.</summary>
internal static class CniResult
{
    /// <summary>
    /// The addresses without their prefix length, the pod interface's first: CNI 0.3.0 and later
    /// results list <c>ips</c>, each pointing by index into <c>interfaces</c> (the one inside the
    /// sandbox named <paramref name="ifName"/> is the pod's); 0.1.0/0.2.0 results have <c>ip4</c>/<c>ip6</c>.
    /// </summary>
    public static List<string> Ips(JsonObject? result, string ifName)
    {
        var pod = new List<string>();
        var other = new List<string>();
        if (result is null)
            return pod;
        var interfaces = result["interfaces"] as JsonArray;
        if (result["ips"] is JsonArray ips)
        {
            foreach (var ip in ips.OfType<JsonObject>())
            {
                if (Address(ip["address"]) is not { } address)
                    continue;
                var onPod = ip["interface"] is JsonValue index && index.TryGetValue<int>(out var i)
                    && interfaces is not null && i >= 0 && i < interfaces.Count
                    && interfaces[i] is JsonObject iface
                    && Text(iface["name"]) == ifName
                    && Text(iface["sandbox"]) is { Length: > 0 };
                (onPod ? pod : other).Add(address);
            }
        }
        foreach (var family in new[] { "ip4", "ip6" })
        {
            if (result[family] is JsonObject legacy && Address(legacy["ip"]) is { } address)
                other.Add(address);
        }
        pod.AddRange(other);
        return pod.Distinct(StringComparer.Ordinal).ToList();
    }

    private static string? Text(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static string? Address(JsonNode? node)
    {
        if (Text(node) is not { Length: > 0 } cidr)
            return null;
        var slash = cidr.IndexOf('/');
        return slash < 0 ? cidr : cidr[..slash];
    }
}
