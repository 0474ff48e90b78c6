using System.Text;
using System.Text.Json;
using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.Server.Services;

/// <summary>Sandbox → CRI messages.</summary>
internal static class SandboxMapping
{
    public static PodSandboxState State(Sandbox s) =>
        s.State == SandboxState.Ready ? PodSandboxState.SandboxReady : PodSandboxState.SandboxNotready;

    /// <summary>
    /// The sandbox as ListPodSandbox gives it: built once per sandbox and state, with its serialised
    /// bytes (ListAnswers writes the answer from those), then shared by every
    /// answer (read-only: never change the message returned). kubelet lists every pod every second;
    /// building 1,000 of these, with their label and annotation maps, was 1.7 of ListPodSandbox's
    /// 4.5 ms p50 over 1,000 pods (docs/benchmark.md).
    /// </summary>
    public static PodSandbox ToPodSandbox(Sandbox s)
    {
        var state = State(s);
        var byState = Listed.GetValue(s, static _ => new PodSandbox[2]);
        var index = state == PodSandboxState.SandboxReady ? 0 : 1;
        // Two callers racing here build equal messages; either may stay.
        return Volatile.Read(ref byState[index]) ?? (byState[index] = ListAnswers.Remember(Build(s, state)));
    }

    /// <summary>Per sandbox, its listing as READY and as NOTREADY; an entry goes with its sandbox.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Sandbox, PodSandbox?[]> Listed = new();

    private static PodSandbox Build(Sandbox s, PodSandboxState state) => new()
    {
        Id = s.Id,
        Metadata = s.Config.Metadata,
        State = state,
        CreatedAt = s.CreatedAt,
        Labels = { s.Config.Labels },
        Annotations = { s.Config.Annotations },
        RuntimeHandler = s.RuntimeHandler,
    };

    public static PodSandboxStatus ToStatus(Sandbox s) => new()
    {
        Id = s.Id,
        Metadata = s.Config.Metadata,
        State = State(s),
        CreatedAt = s.CreatedAt,
        Network = NetworkOf(s),
        Linux = new LinuxPodSandboxStatus { Namespaces = new global::Runtime.V1.Namespace { Options = s.NamespaceOptions } },
        Labels = { s.Config.Labels },
        Annotations = { s.Config.Annotations },
        RuntimeHandler = s.RuntimeHandler,
    };

    /// <summary>
    /// The CNI result's addresses, the pod interface's first (CRI: "IP address of the PodSandbox";
    /// additional_ips "the list of additional ips (not inclusive of PodSandboxNetworkStatus.Ip)").
    /// Empty with network NODE or loopback only: kubelet then uses the node's address or none.
    /// </summary>
    private static PodSandboxNetworkStatus NetworkOf(Sandbox s)
    {
        var status = new PodSandboxNetworkStatus();
        if (s.Network is not { } n || n.Ips.Count == 0)
            return status;
        status.Ip = n.Ips[0];
        foreach (var ip in n.Ips.Skip(1))
            status.AdditionalIps.Add(new PodIP { Ip = ip });
        return status;
    }

    /// <summary>
    /// What `crictl inspectp` prints under "info": the OCI spec as written, the pins and the infra pid.
    /// </summary>
    public static string VerboseInfo(Sandbox s)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("id", s.Id);
            w.WriteString("name", s.Name);
            w.WriteString("hostname", s.Hostname);
            w.WriteNumber("infraPid", s.InfraPid);
            w.WriteStartObject("pins");
            foreach (var (type, path) in s.Pins)
                w.WriteString(type, path);
            w.WriteEndObject();
            w.WriteString("sandboxDir", s.Dir);
            if (s.Network is { } n)
            {
                w.WriteStartObject("network");
                w.WriteString("name", n.NetworkName);
                w.WriteString("configFile", n.ConfigFile);
                w.WriteBoolean("attached", n.Attached);
                w.WritePropertyName("cniResult");
                if (n.ResultJson.Length > 0)
                    w.WriteRawValue(n.ResultJson);
                else
                    w.WriteNullValue();
                w.WriteEndObject();
            }
            w.WritePropertyName("runtimeSpec");
            try
            {
                w.WriteRawValue(File.ReadAllBytes(s.SpecPath));
            }
            catch (IOException)
            {
                w.WriteNullValue();
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}
