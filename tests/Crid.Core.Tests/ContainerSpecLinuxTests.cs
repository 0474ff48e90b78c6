#pragma warning disable CS0612 // the deprecated seccomp_profile_path and apparmor_profile are what critest v1.26 sends
using System.Text;
using System.Text.Json.Nodes;
using Crid.Core.Errors;
using Crid.Core.Oci;
using Runtime.V1;

namespace Crid.Core.Tests;

/// <summary>Namespaces, cgroup path and limits, annotations, validation and the JSON runc reads.</summary>
public sealed class ContainerSpecLinuxTests : IDisposable
{
    private const string Ns = "config.linux.security_context.namespace_options";
    private readonly SpecFixture _f = new();

    public void Dispose() => _f.Dispose();

    private static Dictionary<string, string?> Namespaces(Spec spec) => spec.Linux!.Namespaces!.ToDictionary(n => n.Type, n => n.Path);

    private Spec WithNs(PodSpecContext pod, NamespaceOption? ns, string? target = null) =>
        _f.Build(SpecFixture.Config(c => c.Linux.SecurityContext.NamespaceOptions = ns), pod, target: target);

    [Fact]
    public void Pid_CONTAINER_is_a_new_pid_namespace_and_the_rest_are_the_pods_pins()
    {
        var pod = _f.Pod(pid: NamespaceMode.Container);
        var spec = WithNs(pod, new NamespaceOption { Pid = NamespaceMode.Container });
        var ns = Namespaces(spec);
        Assert.Equal(["pid", "network", "ipc", "uts", "mount"], spec.Linux!.Namespaces!.Select(n => n.Type));
        Assert.Null(ns["pid"]);
        Assert.Null(ns["mount"]);
        Assert.Equal(pod.Pins["net"], ns["network"]);
        Assert.Equal(pod.Pins["ipc"], ns["ipc"]);
        Assert.Equal(pod.Pins["uts"], ns["uts"]);
        Assert.Equal("1024", spec.Linux.Sysctl!["net.core.somaxconn"]);
    }

    [Fact]
    public void Pid_POD_joins_the_infras_pin_and_no_options_means_the_pods_modes()
    {
        var pod = _f.Pod(pid: NamespaceMode.Pod);
        Assert.Equal(pod.Pins["pid"], Namespaces(WithNs(pod, new NamespaceOption { Pid = NamespaceMode.Pod }))["pid"]);
        Assert.Equal(pod.Pins["pid"], Namespaces(WithNs(pod, null))["pid"]);
        Assert.Null(Namespaces(WithNs(pod, new NamespaceOption { Pid = NamespaceMode.Container }))["pid"]);
    }

    [Fact]
    public void Host_namespaces_are_left_out_so_the_runtime_shares_its_own()
    {
        var host = new NamespaceOption { Pid = NamespaceMode.Node, Network = NamespaceMode.Node, Ipc = NamespaceMode.Node };
        var pod = _f.Pod(pid: NamespaceMode.Node, network: NamespaceMode.Node, ipc: NamespaceMode.Node);
        Assert.Equal(["mount", "uts"], Namespaces(WithNs(pod, host)).Keys.Order());
    }

    [Fact]
    public void Pid_TARGET_joins_the_target_containers_namespace()
    {
        var target = new NamespaceOption { Pid = NamespaceMode.Target, TargetId = "feed" };
        Assert.Equal("/proc/4242/ns/pid", Namespaces(WithNs(_f.Pod(), target, "/proc/4242/ns/pid"))["pid"]);
        var e = Assert.Throws<InvalidArgumentException>(() => WithNs(_f.Pod(), target));
        Assert.Equal($"{Ns}.target_id", e.Field);
        Assert.Throws<InvalidArgumentException>(() => WithNs(_f.Pod(), new NamespaceOption { Pid = NamespaceMode.Target }, "/proc/1/ns/pid"));
    }

    [Theory]
    [InlineData(NamespaceMode.Pod, NamespaceMode.Node, NamespaceMode.Pod, "network")]
    [InlineData(NamespaceMode.Pod, NamespaceMode.Pod, NamespaceMode.Node, "ipc")]
    [InlineData(NamespaceMode.Node, NamespaceMode.Pod, NamespaceMode.Pod, "pid")]
    [InlineData((NamespaceMode)9, NamespaceMode.Pod, NamespaceMode.Pod, "pid")]
    public void A_container_cannot_leave_its_pods_namespaces(NamespaceMode pid, NamespaceMode network, NamespaceMode ipc, string field)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => WithNs(_f.Pod(), new NamespaceOption { Pid = pid, Network = network, Ipc = ipc }));
        Assert.Equal($"{Ns}.{field}", e.Field);
    }

    [Fact]
    public void Pid_POD_in_a_pod_without_a_pid_pin_is_InvalidArgument()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => WithNs(_f.Pod(pid: NamespaceMode.Container), new NamespaceOption { Pid = NamespaceMode.Pod }));
        Assert.Equal($"{Ns}.pid", e.Field);
    }

    [Fact]
    public void A_user_namespaced_pod_gives_its_user_pin_and_mappings_and_refuses_other_mappings()
    {
        var pod = _f.Pod(pid: NamespaceMode.Container, userns: true);
        var spec = WithNs(pod, pod.NamespaceOptions);
        Assert.Equal(pod.Pins["user"], Namespaces(spec)["user"]);
        var m = Assert.Single(spec.Linux!.UidMappings!);
        Assert.Equal((0u, 100000u, 65536u), (m.ContainerId, m.HostId, m.Size));
        Assert.Single(spec.Linux.GidMappings!);
        var other = pod.NamespaceOptions.Clone();
        other.UsernsOptions.Uids[0] = new IDMapping { ContainerId = 0, HostId = 0, Length = 1 };
        Assert.Throws<InvalidArgumentException>(() => WithNs(pod, other));
        var host = pod.NamespaceOptions.Clone();
        host.UsernsOptions.Mode = NamespaceMode.Node;
        Assert.Throws<InvalidArgumentException>(() => WithNs(pod, host));
    }

    [Fact]
    public void On_cgroup_v2_a_container_gets_a_cgroup_namespace_unless_privileged()
    {
        _f.Host.Cgroups = _f.Host.Cgroups with { Unified = true };
        Assert.Contains("cgroup", Namespaces(_f.Build(_ => { })).Keys);
        Assert.DoesNotContain("cgroup", Namespaces(_f.Build(c => c.Linux.SecurityContext.Privileged = true, _f.Pod(privileged: true))).Keys);
        _f.Host.Cgroups = _f.Host.Cgroups with { Unified = false };
        Assert.DoesNotContain("cgroup", Namespaces(_f.Build(_ => { })).Keys);
    }

    // ---- cgroup ----

    [Fact]
    public void The_cgroup_is_named_after_the_container_under_the_pods_parent_or_crids()
    {
        Assert.Equal("/kubepods/burstable/pod1/crid-c0ffee", _f.Build(_ => { }, _f.Pod(cgroupParent: "/kubepods/burstable/pod1/")).Linux!.CgroupsPath);
        Assert.Equal("/crid/crid-c0ffee", _f.Build(_ => { }).Linux!.CgroupsPath);
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(_ => { }, _f.Pod(cgroupParent: "kubepods-burstable.slice")));
        Assert.Equal("sandbox_config.linux.cgroup_parent", e.Field);
    }

    private Oci.LinuxResources? Limits(Action<LinuxContainerResources> edit) =>
        _f.Build(c =>
        {
            c.Linux.Resources = new LinuxContainerResources();
            edit(c.Linux.Resources);
        }).Linux!.Resources;

    [Fact]
    public void Cpu_and_memory_limits_are_the_configs_with_no_swap_beyond_the_limit()
    {
        var r = Limits(l =>
        {
            l.CpuPeriod = 100000;
            l.CpuQuota = 50000;
            l.CpuShares = 512;
            l.CpusetCpus = "0-1";
            l.CpusetMems = "0";
            l.MemoryLimitInBytes = 64 << 20;
        })!;
        Assert.Equal((100000UL, 50000L, 512UL, "0-1", "0"), (r.Cpu!.Period ?? 0, r.Cpu.Quota ?? 0, r.Cpu.Shares ?? 0, r.Cpu.Cpus, r.Cpu.Mems));
        Assert.Equal((64L << 20, 64L << 20), (r.Memory!.Limit ?? 0, r.Memory.Swap ?? 0));
        Assert.Equal(-1L, Limits(l => { l.MemoryLimitInBytes = 1 << 20; l.MemorySwapLimitInBytes = -1; })!.Memory!.Swap);
        _f.Host.Cgroups = _f.Host.Cgroups with { Swap = false };
        Assert.Null(Limits(l => l.MemoryLimitInBytes = 64 << 20)!.Memory!.Swap);
    }

    [Fact]
    public void No_resources_means_no_limits()
    {
        var spec = _f.Build(c => c.Linux.Resources = null);
        Assert.Null(spec.Linux!.Resources!.Cpu);
        Assert.Null(spec.Linux.Resources.Memory);
        Assert.Null(spec.Process!.OomScoreAdj);
    }

    [Fact]
    public void Hugepage_limits_are_dropped_without_the_hugetlb_controller_and_checked_with_it()
    {
        var limits = new Runtime.V1.HugepageLimit { PageSize = "2MB", Limit = 0 };
        Assert.Null(Limits(l => l.HugepageLimits.Add(limits))!.HugepageLimits);
        _f.Host.Cgroups = _f.Host.Cgroups with { Hugetlb = true };
        Assert.Equal("2MB", Assert.Single(Limits(l => l.HugepageLimits.Add(limits))!.HugepageLimits!).PageSize);
        var e = Assert.Throws<InvalidArgumentException>(() => Limits(l => l.HugepageLimits.Add(new Runtime.V1.HugepageLimit { PageSize = "16GB" })));
        Assert.Equal("config.linux.resources.hugepage_limits[0].page_size", e.Field);
    }

    [Fact]
    public void Unified_files_need_cgroup_v2()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => Limits(l => l.Unified["memory.high"] = "1000000"));
        Assert.Equal("config.linux.resources.unified", e.Field);
        _f.Host.Cgroups = _f.Host.Cgroups with { Unified = true };
        Assert.Equal("1000000", Limits(l => l.Unified["memory.high"] = "1000000")!.Unified!["memory.high"]);
    }

    [Theory]
    [InlineData(-998, 0, 0)]
    [InlineData(500, 0, 500)]
    [InlineData(-998, -1000, -998)]
    [InlineData(-500, -100, -100)]
    public void Oom_score_adj_is_clamped_to_what_the_daemon_may_set(long asked, int floor, int expected)
    {
        _f.Host.MinOomScoreAdj = floor;
        Assert.Equal(expected, _f.Build(c => c.Linux.Resources = new LinuxContainerResources { OomScoreAdj = asked }).Process!.OomScoreAdj);
    }

    [Fact]
    public void The_pids_limit_is_the_callers()
    {
        var spec = ContainerSpecs.Build(new ContainerSpecRequest
        {
            Id = "c0ffee", Config = SpecFixture.Config(), Pod = _f.Pod(), Image = SpecFixture.Image(), RootfsPath = _f.Rootfs, PidsLimit = 1024,
        }, _f.Host);
        Assert.Equal(1024, spec.Linux!.Resources!.Pids!.Limit);
    }

    [Theory]
    [InlineData("cpu_period", 500L)]
    [InlineData("cpu_period", 2_000_000L)]
    [InlineData("cpu_quota", 10L)]
    [InlineData("cpu_shares", 1L)]
    [InlineData("memory_limit_in_bytes", -5L)]
    [InlineData("memory_swap_limit_in_bytes", -2L)]
    [InlineData("oom_score_adj", 1001L)]
    public void Absurd_limits_are_InvalidArgument(string field, long value)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => Limits(l =>
        {
            switch (field)
            {
                case "cpu_period": l.CpuPeriod = value; break;
                case "cpu_quota": l.CpuQuota = value; break;
                case "cpu_shares": l.CpuShares = value; break;
                case "memory_limit_in_bytes": l.MemoryLimitInBytes = value; break;
                case "memory_swap_limit_in_bytes": l.MemorySwapLimitInBytes = value; break;
                case "oom_score_adj": l.OomScoreAdj = value; break;
            }
        }));
        Assert.Equal($"config.linux.resources.{field}", e.Field);
    }

    [Theory]
    [InlineData("0-", "cpuset_cpus")]
    [InlineData("a", "cpuset_cpus")]
    [InlineData("3-1", "cpuset_cpus")]
    [InlineData("7", "cpuset_cpus")]
    public void A_cpuset_the_host_cannot_give_is_InvalidArgument(string cpus, string field)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => Limits(l => l.CpusetCpus = cpus));
        Assert.Equal($"config.linux.resources.{field}", e.Field);
    }

    // ---- annotations, labels, validation, JSON ----

    [Fact]
    public void Annotations_are_the_containers_plus_the_keys_containerd_writes()
    {
        var spec = _f.Build(c =>
        {
            c.Annotations["example.com/mine"] = "1";
            c.Annotations[CriAnnotations.SandboxId] = "spoofed";
            c.Labels["tier"] = "web";
        });
        var a = spec.Annotations!;
        Assert.Equal("1", a["example.com/mine"]);
        Assert.Equal("container", a[CriAnnotations.ContainerType]);
        Assert.Equal("0123abcd", a[CriAnnotations.SandboxId]);
        Assert.Equal("web", a[CriAnnotations.SandboxName]);
        Assert.Equal("prod", a[CriAnnotations.SandboxNamespace]);
        Assert.Equal("uid-1", a[CriAnnotations.SandboxUid]);
        Assert.Equal("app", a[CriAnnotations.ContainerName]);
        Assert.Equal("busybox", a[CriAnnotations.ImageName]);
        Assert.False(a.ContainsKey("example.com/pod-only"));
        Assert.False(a.ContainsKey("tier"));
    }

    [Fact]
    public void The_hostname_is_the_pods()
    {
        Assert.Equal("web-host", _f.Build(_ => { }).Hostname);
    }

    public static TheoryData<string, Action<ContainerConfig>> Malformed() => new()
    {
        { "config.metadata.name", c => c.Metadata.Name = "" },
        { "config.metadata.name", c => c.Metadata.Name = "a/b" },
        { "config.image.image", c => c.Image = null },
        { "config.command[0]", c => c.Command.Add("a\0b") },
        { "config.args[1]", c => c.Args.Add(["x", "\0"]) },
        { "config.working_dir", c => c.WorkingDir = "srv" },
        { "config.envs[0].key", c => c.Envs.Add(new KeyValue { Key = "A=B", Value = "c" }) },
        { "config.envs[0].key", c => c.Envs.Add(new KeyValue { Key = "", Value = "c" }) },
        { "config.mounts[0].image", c => c.Mounts.Add(new Runtime.V1.Mount { ContainerPath = "/v", Image = new ImageSpec { Image = "busybox" } }) },
        { "config.mounts[0].recursive_read_only", c => c.Mounts.Add(new Runtime.V1.Mount { ContainerPath = "/v", HostPath = "/tmp", Readonly = true, RecursiveReadOnly = true }) },
        { "config.mounts[0].uidMappings", c => c.Mounts.Add(new Runtime.V1.Mount { ContainerPath = "/v", HostPath = "/tmp", UidMappings = { SpecFixture.Mapping } }) },
        { "config.mounts[0].propagation", c => c.Mounts.Add(new Runtime.V1.Mount { ContainerPath = "/v", HostPath = "/tmp", Propagation = (MountPropagation)7 }) },
        { "config.devices[0].container_path", c => c.Devices.Add(new Device { HostPath = "/dev/null", ContainerPath = "/etc/null" }) },
        { "config.CDI_devices", c => c.CDIDevices.Add(new CDIDevice { Name = "vendor.com/gpu=0" }) },
        { "config.linux.security_context.masked_paths[0]", c => c.Linux.SecurityContext.MaskedPaths.Add("proc") },
        { "config.linux.security_context.readonly_paths[0]", c => c.Linux.SecurityContext.ReadonlyPaths.Add("") },
        { "config.linux.resources.unified[\"../x\"]", c => c.Linux.Resources = new LinuxContainerResources { Unified = { ["../x"] = "1" } } },
        { "config.linux.security_context.run_as_username", c => { c.Linux.SecurityContext.RunAsUsername = "nobody"; c.Linux.SecurityContext.RunAsUser = new Int64Value(); } },
        { "config.linux.security_context.seccomp_profile_path", c => c.Linux.SecurityContext.SeccompProfilePath = "gibberish" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void A_malformed_config_is_InvalidArgument_naming_the_field(string field, Action<ContainerConfig> edit)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(edit));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void A_config_without_linux_settings_gets_the_pods_modes_and_the_defaults()
    {
        var spec = _f.Build(c => c.Linux = null);
        Assert.Equal(_f.Pod().Pins["pid"], Namespaces(spec)["pid"]);
        Assert.Equal(PodSpec.DefaultCapabilities, spec.Process!.Capabilities!.Bounding!);
        Assert.Equal((0u, 0u), (spec.Process.User.Uid, spec.Process.User.Gid));
        Assert.Null(spec.Linux!.Seccomp);
        Assert.False(spec.Process.NoNewPrivileges);
    }

    [Fact]
    public void The_default_seccomp_profile_names_the_architectures_of_the_host()
    {
        Assert.Equal(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"], DefaultSeccomp.Build([], System.Runtime.InteropServices.Architecture.Arm64).Architectures!);
        Assert.Contains(DefaultSeccomp.Build([], System.Runtime.InteropServices.Architecture.X64).Syscalls!, s => s.Names!.Contains("arch_prctl"));
    }

    [Fact]
    public void Validate_alone_needs_no_pod_image_or_host()
    {
        ContainerSpecs.Validate(SpecFixture.Config());
        Assert.Throws<InvalidArgumentException>(() => ContainerSpecs.Validate(null));
        Assert.Throws<InvalidArgumentException>(() => ContainerSpecs.Validate(SpecFixture.Config(c => c.WorkingDir = "x")));
    }

    [Fact]
    public void The_json_leaves_out_what_is_not_set_and_reads_back_the_same()
    {
        var spec = _f.Build(_ => { });
        var bytes = ContainerSpecs.Serialize(spec);
        var json = JsonNode.Parse(bytes)!;
        Assert.Equal(SpecVersion.Current, (string)json["ociVersion"]!);
        Assert.Null(json["linux"]!["uidMappings"]);
        Assert.Null(json["linux"]!["seccomp"]);
        Assert.Null(json["process"]!["capabilities"]!["inheritable"]);
        Assert.Null(json["process"]!["oomScoreAdj"]);
        Assert.Equal(Encoding.UTF8.GetString(bytes), Encoding.UTF8.GetString(SpecJson.Serialize(SpecJson.Deserialize(bytes))));
    }

    [Fact]
    public void PodSpecContext_From_refuses_a_sandbox_that_is_not_ready()
    {
        var sandbox = SandboxSpecCases.All().First().Sandbox;
        Assert.Equal(sandbox.Pins, PodSpecContext.From(sandbox).Pins);
        sandbox.Status.Update(st => st with { State = Sandboxes.SandboxState.NotReady });
        Assert.Throws<FailedPreconditionException>(() => PodSpecContext.From(sandbox));
    }
}
