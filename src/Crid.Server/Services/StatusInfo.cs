using System.Buffers;
using System.Text;
using System.Text.Json;
using Crid.Core.Events;
using Crid.Core.Networking;
using Crid.Core.Stats;

namespace Crid.Server.Services;

/// <summary>
/// The parts of `crictl info` (Status verbose) beyond the configuration keys: the pod network in
/// use, the cgroup layout stats and runc's placement follow, and the event stream's counters.
/// Each value is one JSON document, as crictl expects of the info map.
/// </summary>
internal static class StatusInfo
{
    public static string Network(PodNetwork network, NetworkReadiness readiness) => Json(w =>
    {
        var info = network.Info();
        w.WriteBoolean("ready", readiness.Ready);
        w.WriteString("reason", readiness.Reason);
        w.WriteString("message", readiness.Message);
        w.WriteString("network", info.Name);
        w.WriteString("file", info.File);
        w.WriteString("cniVersion", info.CniVersion);
        w.WriteStartArray("plugins");
        foreach (var p in info.Plugins)
            w.WriteStringValue(p);
        w.WriteEndArray();
        w.WriteString("podInterface", PodNetwork.InterfaceName);
    });

    public static string Cgroups(CgroupLayout layout) => Json(w =>
    {
        w.WriteString("driver", "cgroupfs");
        w.WriteString("mode", layout.Mode switch
        {
            CgroupMode.Legacy => "v1",
            CgroupMode.Hybrid => "hybrid",
            _ => "v2",
        });
        // What runc 1.1 picks for this layout, and so where container figures are read.
        w.WriteString("runcManager", layout.Mode == CgroupMode.Unified ? "v2" : "v1");
        w.WriteString("unifiedMount", layout.UnifiedMount);
        w.WriteStartObject("v1Controllers");
        foreach (var (controller, mount) in layout.V1Mounts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            w.WriteString(controller, mount);
        w.WriteEndObject();
    });

    public static string Events(ContainerEventBus bus) => Json(w =>
    {
        w.WriteNumber("subscribers", bus.SubscriberCount);
        w.WriteNumber("published", bus.Published);
        w.WriteNumber("subscribersCutOff", bus.Overflows);
        w.WriteNumber("queueCapacity", bus.QueueCapacity);
    });

    private static string Json(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
