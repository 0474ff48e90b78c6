using Runtime.V1;

namespace Crid.Bench;

/// <summary>
/// The benchmark's pod: testdata/cri-vectors/configs/pod_default.json (what `crictl runp` sends
/// for a typical pod) without the cgroup parent, so network and ipc are the pod's, pid is per
/// container (no infra process), with DNS, a port mapping, labels and annotations. Each pod gets a
/// name and uid of its own: the CRI reserves a name per sandbox.
/// </summary>
internal static class Pods
{
    private static int _next;

    public static PodSandboxConfig Next()
    {
        var n = Interlocked.Increment(ref _next);
        return new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata
            {
                Name = $"bench-{n}",
                Uid = Guid.NewGuid().ToString("D"),
                Namespace = "default",
                Attempt = 1,
            },
            Hostname = $"bench-{n}",
            LogDirectory = $"/var/log/pods/default_bench-{n}",
            DnsConfig = new DNSConfig
            {
                Servers = { "10.96.0.10" },
                Searches = { "default.svc.cluster.local", "svc.cluster.local" },
                Options = { "ndots:5" },
            },
            PortMappings = { new PortMapping { Protocol = Protocol.Tcp, ContainerPort = 80, HostPort = 8080, HostIp = "127.0.0.1" } },
            Labels = { ["app"] = "nginx", ["tier"] = "web" },
            Annotations = { ["example.com/owner"] = "team-a", ["example.com/note"] = "benchmark" },
            Linux = new LinuxPodSandboxConfig
            {
                SecurityContext = new LinuxSandboxSecurityContext
                {
                    NamespaceOptions = new NamespaceOption
                    {
                        Network = NamespaceMode.Pod,
                        Pid = NamespaceMode.Container,
                        Ipc = NamespaceMode.Pod,
                    },
                    SelinuxOptions = new SELinuxOption { User = "system_u", Role = "system_r", Type = "container_t", Level = "s0:c4,c5" },
                },
            },
        };
    }
}
