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

    public static PodSandbox ToPodSandbox(Sandbox s) => new()
    {
        Id = s.Id,
        Metadata = s.Config.Metadata,
        State = State(s),
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
        // Pod networking is not wired yet: a pod has loopback only, so there is no IP to report.
        Network = new PodSandboxNetworkStatus(),
        Linux = new LinuxPodSandboxStatus { Namespaces = new global::Runtime.V1.Namespace { Options = s.NamespaceOptions } },
        Labels = { s.Config.Labels },
        Annotations = { s.Config.Annotations },
        RuntimeHandler = s.RuntimeHandler,
    };

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
