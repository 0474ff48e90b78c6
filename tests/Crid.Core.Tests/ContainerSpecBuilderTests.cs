using System.Text.Json.Nodes;
using Crid.Core.Errors;
using Crid.Core.Oci;
using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.Core.Tests;

/// <summary>
/// The container spec derived from a sandbox's config.json, as SandboxSpec writes it. No root needed:
/// the pins are paths that are only written into the spec, never opened.
/// </summary>
public sealed class ContainerSpecBuilderTests : IDisposable
{
    private const string Ns = "config.linux.security_context.namespace_options";
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-spec-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static readonly IDMapping Mapping = new() { ContainerId = 0, HostId = 100000, Length = 65536 };

    /// <summary>A READY sandbox with the pins RunPodSandbox would have made for these modes, and its config.json on disk.</summary>
    private Sandbox Pod(NamespaceMode pid = NamespaceMode.Container, NamespaceMode network = NamespaceMode.Pod,
        NamespaceMode ipc = NamespaceMode.Pod, bool userns = false, string cgroupParent = "", Action<PodSandboxConfig>? edit = null)
    {
        var ns = new NamespaceOption { Pid = pid, Network = network, Ipc = ipc };
        if (userns)
            ns.UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { Mapping }, Gids = { Mapping } };
        var config = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = "web", Namespace = "prod", Uid = "uid-1", Attempt = 2 },
            Hostname = "web-host",
            Annotations = { ["example.com/pod-only"] = "yes" },
            Linux = new LinuxPodSandboxConfig
            {
                CgroupParent = cgroupParent,
                SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = ns },
                Sysctls = { ["net.core.somaxconn"] = "1024" },
            },
        };
        edit?.Invoke(config);
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
        var dir = Path.Combine(_dir, "sandboxes", "0123abcd");
        Directory.CreateDirectory(dir);
        var sandbox = new Sandbox
        {
            Id = "0123abcd",
            Name = "k8s_web_prod_uid-1_2",
            Config = config,
            CreatedAt = 1,
            RuntimeHandler = "",
            Hostname = "web-host",
            Uuid = "9c1dc503",
            Pins = pins,
            Dir = dir,
            Status = Crid.Core.Stores.StatusStorage<SandboxStatus>.InMemory(new SandboxStatus { State = SandboxState.Ready }),
        };
        File.WriteAllText(sandbox.SpecPath, SandboxSpec.Build(sandbox).ToJsonString());
        return sandbox;
    }

    private static ContainerSpecRequest Container(string id = "c0ffee") => new()
    {
        Id = id,
        Name = "app",
        RootfsPath = "/var/lib/images/app/rootfs",
        Args = ["/bin/app", "--port", "80"],
    };

    private static Dictionary<string, string?> Namespaces(JsonObject spec) =>
        spec["linux"]!["namespaces"]!.AsArray().ToDictionary(n => (string)n!["type"]!, n => (string?)n!["path"]);

    [Fact]
    public void Pid_CONTAINER_is_a_new_pid_namespace_and_the_rest_are_the_pods_pins()
    {
        var pod = Pod();
        var spec = ContainerSpecBuilder.Build(pod, new NamespaceOption { Pid = NamespaceMode.Container }, Container());
        var ns = Namespaces(spec);
        Assert.Equal(["ipc", "mount", "network", "pid", "uts"], ns.Keys.Order());
        Assert.Null(ns["pid"]);
        Assert.Null(ns["mount"]);
        Assert.Equal(pod.Pins["net"], ns["network"]);
        Assert.Equal(pod.Pins["ipc"], ns["ipc"]);
        Assert.Equal(pod.Pins["uts"], ns["uts"]);
        Assert.Equal(5, spec["linux"]!["namespaces"]!.AsArray().Count);
    }

    [Fact]
    public void Pid_POD_joins_the_pods_pid_pin()
    {
        var pod = Pod(pid: NamespaceMode.Pod);
        var ns = Namespaces(ContainerSpecBuilder.Build(pod, new NamespaceOption { Pid = NamespaceMode.Pod }, Container()));
        Assert.Equal(pod.Pins["pid"], ns["pid"]);
    }

    [Fact]
    public void A_pid_CONTAINER_container_in_a_pid_POD_pod_still_gets_its_own()
    {
        var ns = Namespaces(ContainerSpecBuilder.Build(Pod(pid: NamespaceMode.Pod), new NamespaceOption { Pid = NamespaceMode.Container }, Container()));
        Assert.True(ns.ContainsKey("pid"));
        Assert.Null(ns["pid"]);
    }

    [Fact]
    public void Host_namespaces_are_left_out_so_the_runtime_shares_its_own()
    {
        var pod = Pod(pid: NamespaceMode.Node, network: NamespaceMode.Node, ipc: NamespaceMode.Node);
        var spec = ContainerSpecBuilder.Build(pod, new NamespaceOption { Pid = NamespaceMode.Node, Network = NamespaceMode.Node, Ipc = NamespaceMode.Node }, Container());
        var ns = Namespaces(spec);
        Assert.Equal(["mount", "uts"], ns.Keys.Order());
        Assert.Equal(pod.Pins["uts"], ns["uts"]);
        // The host's /dev/shm goes with the host's ipc namespace, as in the pod's spec.
        var shm = spec["mounts"]!.AsArray().Single(m => (string)m!["destination"]! == "/dev/shm")!;
        Assert.Equal("/dev/shm", (string)shm["source"]!);
    }

    [Fact]
    public void Without_namespace_options_the_container_takes_the_pods_modes()
    {
        var pod = Pod(pid: NamespaceMode.Pod);
        Assert.Equal(pod.Pins["pid"], Namespaces(ContainerSpecBuilder.Build(pod, null, Container()))["pid"]);
        Assert.Null(Namespaces(ContainerSpecBuilder.Build(Pod(), null, Container()))["pid"]);
    }

    [Fact]
    public void A_user_namespaced_pod_gives_its_user_pin_and_mappings()
    {
        var pod = Pod(userns: true);
        var spec = ContainerSpecBuilder.Build(pod, new NamespaceOption
        {
            Pid = NamespaceMode.Container,
            UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { Mapping }, Gids = { Mapping } },
        }, Container());
        Assert.Equal(pod.Pins["user"], Namespaces(spec)["user"]);
        foreach (var key in new[] { "uidMappings", "gidMappings" })
        {
            var m = Assert.Single(spec["linux"]![key]!.AsArray())!;
            Assert.Equal(0u, (uint)m["containerID"]!);
            Assert.Equal(100000u, (uint)m["hostID"]!);
            Assert.Equal(65536u, (uint)m["size"]!);
        }
    }

    [Fact]
    public void A_user_namespaced_pod_on_the_hosts_network_and_ipc_binds_the_hosts_sys_and_mounts_no_mqueue()
    {
        var spec = ContainerSpecBuilder.Build(Pod(network: NamespaceMode.Node, ipc: NamespaceMode.Node, userns: true),
            new NamespaceOption { Pid = NamespaceMode.Container, Network = NamespaceMode.Node, Ipc = NamespaceMode.Node }, Container());
        var mounts = spec["mounts"]!.AsArray().Select(m => m!.AsObject()).ToDictionary(m => (string)m["destination"]!);
        Assert.Equal("bind", (string)mounts["/sys"]["type"]!);
        Assert.Equal("/sys", (string)mounts["/sys"]["source"]!);
        var options = mounts["/sys"]["options"]!.AsArray().Select(o => (string)o!).ToList();
        Assert.Contains("ro", options);
        Assert.Contains("rbind", options);
        Assert.False(mounts.ContainsKey("/dev/mqueue"));
    }

    [Theory]
    [InlineData(false, NamespaceMode.Node)]
    [InlineData(true, NamespaceMode.Pod)]
    public void Sysfs_and_mqueue_are_mounted_where_the_mounter_owns_the_namespaces(bool userns, NamespaceMode network)
    {
        var pod = Pod(network: network, ipc: network, userns: userns);
        var spec = ContainerSpecBuilder.Build(pod, new NamespaceOption { Pid = NamespaceMode.Container, Network = network, Ipc = network }, Container());
        var mounts = spec["mounts"]!.AsArray().Select(m => m!.AsObject()).ToDictionary(m => (string)m["destination"]!);
        Assert.Equal("sysfs", (string)mounts["/sys"]["type"]!);
        Assert.Equal("mqueue", (string)mounts["/dev/mqueue"]["type"]!);
    }

    [Fact]
    public void The_process_is_the_containers_and_keeps_the_pods_security_settings()
    {
        var spec = ContainerSpecBuilder.Build(Pod(), null, Container() with
        {
            Env = ["PATH=/app/bin", "MODE=prod", "MODE=debug"],
            WorkingDir = "/srv",
            Uid = 1000,
            Gid = 2000,
        });
        var process = spec["process"]!;
        Assert.Equal(["/bin/app", "--port", "80"], process["args"]!.AsArray().Select(a => (string)a!));
        Assert.Equal(["PATH=/app/bin", "MODE=debug"], process["env"]!.AsArray().Select(a => (string)a!));
        Assert.Equal("/srv", (string)process["cwd"]!);
        Assert.Equal(1000u, (uint)process["user"]!["uid"]!);
        Assert.Equal(2000u, (uint)process["user"]!["gid"]!);
        Assert.True((bool)process["noNewPrivileges"]!);
        Assert.Contains("CAP_NET_BIND_SERVICE", process["capabilities"]!["bounding"]!.AsArray().Select(c => (string)c!));
    }

    [Fact]
    public void Defaults_keep_the_pods_path_and_root_user_and_use_slash_as_cwd()
    {
        var process = ContainerSpecBuilder.Build(Pod(), null, Container())["process"]!;
        Assert.StartsWith("PATH=", (string)process["env"]![0]!);
        Assert.Equal("/", (string)process["cwd"]!);
        Assert.Equal(0u, (uint)process["user"]!["uid"]!);
        Assert.DoesNotContain("/pause", process["args"]!.AsArray().Select(a => (string)a!));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_root_is_the_callers_rootfs_writable_unless_asked(bool readOnly)
    {
        var spec = ContainerSpecBuilder.Build(Pod(), null, Container() with { ReadonlyRootfs = readOnly });
        Assert.Equal("/var/lib/images/app/rootfs", (string)spec["root"]!["path"]!);
        Assert.Equal(readOnly, (bool)spec["root"]!["readonly"]!);
    }

    [Fact]
    public void Hostname_and_the_pods_resolv_conf_and_hostname_files()
    {
        var pod = Pod();
        var spec = ContainerSpecBuilder.Build(pod, null, Container());
        Assert.Equal("web-host", (string)spec["hostname"]!);
        var mounts = spec["mounts"]!.AsArray().Select(m => m!.AsObject()).ToList();
        Assert.Equal(mounts.Count, mounts.Select(m => (string)m["destination"]!).Distinct().Count());
        foreach (var (destination, file) in new[] { ("/etc/resolv.conf", "resolv.conf"), ("/etc/hostname", "hostname") })
        {
            var m = mounts.Single(m => (string)m["destination"]! == destination);
            Assert.Equal(Path.Combine(pod.Dir, file), (string)m["source"]!);
            Assert.Equal("bind", (string)m["type"]!);
            Assert.Contains("ro", m["options"]!.AsArray().Select(o => (string)o!));
        }
        Assert.Contains(mounts, m => (string)m["destination"]! == "/proc" && (string)m["type"]! == "proc");
    }

    [Fact]
    public void Annotations_name_the_container_and_its_sandbox_but_not_the_pods_own()
    {
        var annotations = ContainerSpecBuilder.Build(Pod(), null, Container())["annotations"]!.AsObject();
        Assert.Equal("container", (string)annotations["io.kubernetes.cri.container-type"]!);
        Assert.Equal("0123abcd", (string)annotations["io.kubernetes.cri.sandbox-id"]!);
        Assert.Equal("app", (string)annotations["io.kubernetes.cri.container-name"]!);
        Assert.Equal("web", (string)annotations["io.kubernetes.cri.sandbox-name"]!);
        Assert.Equal("prod", (string)annotations["io.kubernetes.cri.sandbox-namespace"]!);
        Assert.Equal("uid-1", (string)annotations["io.kubernetes.cri.sandbox-uid"]!);
        Assert.False(annotations.ContainsKey("example.com/pod-only"));
        Assert.False(annotations.ContainsKey("io.kubernetes.cri.sandbox-log-directory"));
    }

    [Fact]
    public void The_pods_sysctls_masks_and_device_rules_carry_over()
    {
        var linux = ContainerSpecBuilder.Build(Pod(), null, Container())["linux"]!;
        Assert.Equal("1024", (string)linux["sysctl"]!["net.core.somaxconn"]!);
        Assert.Contains("/proc/kcore", linux["maskedPaths"]!.AsArray().Select(p => (string)p!));
        Assert.Contains("/proc/sys", linux["readonlyPaths"]!.AsArray().Select(p => (string)p!));
        Assert.False((bool)linux["resources"]!["devices"]![0]!["allow"]!);
    }

    [Fact]
    public void The_cgroup_is_the_containers_under_the_pods_parent()
    {
        var spec = ContainerSpecBuilder.Build(Pod(cgroupParent: "/kubepods/burstable/pod1/"), null, Container("c0ffee"));
        Assert.Equal("/kubepods/burstable/pod1/crid-c0ffee", (string)spec["linux"]!["cgroupsPath"]!);
    }

    [Fact]
    public void Without_a_cgroup_parent_there_is_no_cgroups_path()
    {
        var linux = ContainerSpecBuilder.Build(Pod(), null, Container())["linux"]!.AsObject();
        Assert.False(linux.ContainsKey("cgroupsPath"));
    }

    [Fact]
    public void The_sandbox_spec_is_only_read_and_the_result_serializes()
    {
        var pod = Pod(pid: NamespaceMode.Pod, userns: true, cgroupParent: "/kubepods");
        var before = File.ReadAllBytes(pod.SpecPath);
        var spec = ContainerSpecBuilder.Build(pod, null, Container());
        Assert.Equal(before, File.ReadAllBytes(pod.SpecPath));
        var back = JsonNode.Parse(ContainerSpecBuilder.Serialize(spec))!;
        Assert.True(JsonNode.DeepEquals(spec, back));
        Assert.Equal(SandboxSpec.OciVersion, (string)back["ociVersion"]!);
    }

    [Fact]
    public void Two_containers_get_specs_of_their_own()
    {
        var pod = Pod();
        var a = ContainerSpecBuilder.Build(pod, null, Container("aaaa") with { Name = "a" });
        var b = ContainerSpecBuilder.Build(pod, null, Container("bbbb") with { Name = "b" });
        Assert.Equal("a", (string)a["annotations"]!["io.kubernetes.cri.container-name"]!);
        Assert.Equal("b", (string)b["annotations"]!["io.kubernetes.cri.container-name"]!);
    }

    public static TheoryData<string, string, string> Refused() => new()
    {
        // name, field named in the error, a word the message must hold
        { "target-without-id", $"{Ns}.target_id", "needs the id" },
        { "target-with-id", $"{Ns}.target_id", "cannot be resolved" },
        { "pid-pod-without-pin", $"{Ns}.pid", "has none" },
        { "pid-node-in-a-pod", $"{Ns}.pid", "host's pid namespace" },
        { "pid-unknown", $"{Ns}.pid", "unknown" },
        { "network-node", $"{Ns}.network", "differs from the pod's" },
        { "network-container", $"{Ns}.network", "differs from the pod's" },
        { "ipc-node", $"{Ns}.ipc", "differs from the pod's" },
        { "userns-pod-in-host-pod", $"{Ns}.userns_options.mode", "differs from the pod's" },
        { "other-mappings", $"{Ns}.userns_options", "differ from the pod's" },
        { "no-command", "config.command", "no command" },
        { "relative-cwd", "config.working_dir", "absolute" },
        { "bad-env", "config.envs[0]", "KEY=value" },
        { "no-name", "config.metadata.name", "empty" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void Requests_a_pod_cannot_honour_are_InvalidArgument_naming_the_field(string name, string field, string words)
    {
        var pod = Pod(userns: name == "other-mappings");
        var ns = new NamespaceOption { Pid = NamespaceMode.Container };
        var container = Container();
        switch (name)
        {
            case "target-without-id": ns.Pid = NamespaceMode.Target; break;
            case "target-with-id": ns.Pid = NamespaceMode.Target; ns.TargetId = "deadbeef"; break;
            case "pid-pod-without-pin": ns.Pid = NamespaceMode.Pod; break;
            case "pid-node-in-a-pod": ns.Pid = NamespaceMode.Node; break;
            case "pid-unknown": ns.Pid = (NamespaceMode)42; break;
            case "network-node": ns.Network = NamespaceMode.Node; break;
            case "network-container": ns.Network = NamespaceMode.Container; break;
            case "ipc-node": ns.Ipc = NamespaceMode.Node; break;
            case "userns-pod-in-host-pod": ns.UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { Mapping }, Gids = { Mapping } }; break;
            case "other-mappings":
                var other = new IDMapping { ContainerId = 0, HostId = 200000, Length = 65536 };
                ns.UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { other }, Gids = { other } };
                break;
            case "no-command": container = container with { Args = [] }; break;
            case "relative-cwd": container = container with { WorkingDir = "srv" }; break;
            case "bad-env": container = container with { Env = ["=x"] }; break;
            case "no-name": container = container with { Name = "" }; break;
        }
        var e = Assert.Throws<InvalidArgumentException>(() => ContainerSpecBuilder.Build(pod, ns, container));
        Assert.Equal(field, e.Field);
        Assert.Contains(words, e.Message);
    }

    [Fact]
    public void Host_pid_is_refused_in_a_user_namespaced_pod()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => ContainerSpecBuilder.Build(Pod(pid: NamespaceMode.Node, userns: true),
            new NamespaceOption { Pid = NamespaceMode.Node }, Container()));
        Assert.Equal($"{Ns}.pid", e.Field);
        Assert.Contains("user namespace", e.Message);
    }

    [Fact]
    public void A_container_cannot_leave_its_pods_user_namespace()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => ContainerSpecBuilder.Build(Pod(userns: true),
            new NamespaceOption { Pid = NamespaceMode.Container, UsernsOptions = new UserNamespace { Mode = NamespaceMode.Node } }, Container()));
        Assert.Equal($"{Ns}.userns_options.mode", e.Field);
    }

    [Fact]
    public void A_relative_rootfs_is_a_caller_bug()
    {
        var e = Assert.Throws<ArgumentException>(() => ContainerSpecBuilder.Build(Pod(), null, Container() with { RootfsPath = "rootfs" }));
        Assert.Contains("absolute", e.Message);
    }

    [Fact]
    public void A_stopped_sandbox_has_no_namespaces_to_join()
    {
        var pod = Pod();
        pod.Status.Update(s => s with { State = SandboxState.NotReady });
        var e = Assert.Throws<FailedPreconditionException>(() => ContainerSpecBuilder.Build(pod, null, Container()));
        Assert.Contains("not ready", e.Message);
    }

    [Fact]
    public void A_missing_or_broken_sandbox_spec_is_FailedPrecondition()
    {
        var pod = Pod();
        File.WriteAllText(pod.SpecPath, "[1, 2");
        Assert.Throws<FailedPreconditionException>(() => ContainerSpecBuilder.Build(pod, null, Container()));
        File.Delete(pod.SpecPath);
        var e = Assert.Throws<FailedPreconditionException>(() => ContainerSpecBuilder.Build(pod, null, Container()));
        Assert.Contains(pod.SpecPath, e.Message);
    }
}
