using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.Core.Tests;

/// <summary>
/// Sandboxes in every shape RunPodSandbox makes, for the spec comparisons: testdata/specs holds the
/// config.json each one produced before the spec became a typed model.
/// </summary>
internal static class SandboxSpecCases
{
    private static readonly IDMapping Mapping = new() { ContainerId = 0, HostId = 100000, Length = 65536 };

    public static IEnumerable<(string Name, Sandbox Sandbox)> All()
    {
        yield return ("sandbox-pid-pod", Make(NamespaceMode.Pod, NamespaceMode.Pod, NamespaceMode.Pod, userns: false, full: true));
        yield return ("sandbox-pid-container", Make(NamespaceMode.Container, NamespaceMode.Pod, NamespaceMode.Pod, userns: false, full: false));
        yield return ("sandbox-host", Make(NamespaceMode.Node, NamespaceMode.Node, NamespaceMode.Node, userns: false, full: false));
        yield return ("sandbox-userns", Make(NamespaceMode.Container, NamespaceMode.Pod, NamespaceMode.Pod, userns: true, full: true));
        yield return ("sandbox-userns-host", Make(NamespaceMode.Container, NamespaceMode.Node, NamespaceMode.Node, userns: true, full: false));
    }

    private static Sandbox Make(NamespaceMode pid, NamespaceMode network, NamespaceMode ipc, bool userns, bool full)
    {
        var ns = new NamespaceOption { Pid = pid, Network = network, Ipc = ipc };
        if (userns)
            ns.UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { Mapping }, Gids = { Mapping } };
        var config = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = "web", Namespace = "prod", Uid = "uid-1", Attempt = 2 },
            Hostname = "web-host",
            LogDirectory = full ? "/var/log/pods/prod_web_uid-1" : "",
            Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = ns } },
        };
        if (full)
        {
            config.Annotations["example.com/b"] = "2";
            config.Annotations["example.com/a"] = "1";
            config.Linux.CgroupParent = "/kubepods/burstable/poduid-1";
            config.Linux.Sysctls["net.core.somaxconn"] = "1024";
            config.Linux.Sysctls["kernel.shmmni"] = "2000";
        }
        var pins = new Dictionary<string, string>();
        void Pin(string type) => pins[type] = $"/run/crid-test/{type}ns/9c1dc503";
        if (network == NamespaceMode.Pod)
            Pin("net");
        if (ipc == NamespaceMode.Pod)
            Pin("ipc");
        Pin("uts");
        if (userns)
            Pin("user");
        if (pid == NamespaceMode.Pod)
            Pin("pid");
        return new Sandbox
        {
            Id = "0123abcd",
            Name = "k8s_web_prod_uid-1_2",
            Config = config,
            CreatedAt = 1,
            RuntimeHandler = "",
            Hostname = "web-host",
            Uuid = "9c1dc503",
            Pins = pins,
            Dir = "/var/lib/crid/sandboxes/0123abcd",
            Status = Crid.Core.Stores.StatusStorage<SandboxStatus>.InMemory(new SandboxStatus { State = SandboxState.Ready }),
        };
    }
}
