#pragma warning disable CS0612 // seccomp_profile_path is the deprecated field critest v1.26 sends
using System.Diagnostics;
using System.Globalization;
using Crid.Core.Images;
using Crid.Core.Oci;
using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// Specs from <see cref="ContainerSpecs"/> run by the real runc in real pods of the real daemon,
/// each checked from inside the container the way critest's security-context and container specs
/// check them: ids and groups, capabilities, no_new_privs, read-only root, masked and read-only
/// paths, seccomp, mount propagation both ways, devices, cgroup limits, privileged.
/// </summary>
public sealed class RuncSpecTests : IAsyncLifetime
{
    private static readonly string[] Applets =
    [
        "sh", "cat", "echo", "grep", "id", "ls", "touch", "hostname", "chmod", "mount", "umount", "mkdir", "sleep",
        "stat", "wc", "unshare", "true", "head", "tr",
    ];

    private const string BlockHostname = """{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}""";
    private const string BlockChmod = """{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"}]}""";

    private readonly string _dir = Directory.CreateTempSubdirectory("crid-runcspec-").FullName;
    private readonly string _tag = Guid.NewGuid().ToString("N")[..10];
    private readonly List<string> _containers = [];
    private readonly List<string> _hostMounts = [];
    private readonly string _cgroupParent;
    private Runc _runc = null!;

    public RuncSpecTests() => _cgroupParent = "/crid-test-" + _tag;

    private string Rootfs => Path.Combine(_dir, "rootfs");

    public Task InitializeAsync()
    {
        TestRootfs.Build(Rootfs, Applets);
        File.WriteAllText(Path.Combine(_dir, "block-hostname.json"), BlockHostname);
        File.WriteAllText(Path.Combine(_dir, "block-chmod.json"), BlockChmod);
        _runc = new Runc(Path.Combine(_dir, "runc"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var id in _containers)
        {
            try { await _runc.DeleteAsync(id); }
            catch (Exception) { /* the test already failed; keep cleaning */ }
        }
        try
        {
            // Deepest first: a propagation test stacks mounts.
            foreach (var mount in Enumerable.Reverse(_hostMounts))
                Exec("umount", "-l", mount);
            foreach (var hierarchy in Directory.EnumerateDirectories("/sys/fs/cgroup"))
            {
                if (Directory.Exists(hierarchy + _cgroupParent))
                    Directory.Delete(hierarchy + _cgroupParent);
            }
        }
        finally
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public async Task Uid_gid_and_groups_are_the_configs_resolved_in_the_image()
    {
        await using var pod = await PodAsync("ids");
        var ids = Lines(await RunAsync(pod, "ids", "id -u; id -g; id -G", c =>
        {
            c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1000 };
            c.Linux.SecurityContext.SupplementalGroups.Add(1234);
        }));
        Assert.Equal("1000", ids[0]);
        Assert.Equal("1000", ids[1]);
        // critest expects exactly this: the user's own group, the config's, and the image's group that lists the user.
        Assert.Equal("1000 1234 50000", ids[2]);

        Assert.Equal("nobody", (await RunAsync(pod, "name", "id -un", c => c.Linux.SecurityContext.RunAsUsername = "nobody")).Trim());
        Assert.Equal("1001:1002", (await RunAsync(pod, "group", "echo $(id -u):$(id -g)", c =>
        {
            c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1001 };
            c.Linux.SecurityContext.RunAsGroup = new Int64Value { Value = 1002 };
        })).Trim());
    }

    [Fact]
    public async Task Capabilities_are_added_dropped_and_bounded_by_the_daemons_own()
    {
        await using var pod = await PodAsync("caps");
        const string script = "grep -E '^Cap(Eff|Bnd)' /proc/self/status";
        var defaults = Caps(await RunAsync(pod, "default", script));
        Assert.Equal(Mask(PodSpec.DefaultCapabilities), defaults["CapBnd"]);
        Assert.Equal(defaults["CapBnd"], defaults["CapEff"]);

        var added = Caps(await RunAsync(pod, "add", script, c => c.Linux.SecurityContext.Capabilities = new Capability
        {
            AddCapabilities = { "NET_ADMIN" },
            DropCapabilities = { "NET_RAW" },
        }));
        Assert.Equal(Mask([.. PodSpec.DefaultCapabilities.Where(c => c != "CAP_NET_RAW"), "CAP_NET_ADMIN"]), added["CapEff"]);

        // critest "adding ALL": everything this daemon holds, which here lacks CAP_SYS_RESOURCE.
        var all = Caps(await RunAsync(pod, "all", script, c => c.Linux.SecurityContext.Capabilities = new Capability { AddCapabilities = { "ALL" } }));
        Assert.Equal(OwnMask("CapBnd"), all["CapBnd"]);
        Assert.NotEqual(0UL, all["CapBnd"]);

        var none = Caps(await RunAsync(pod, "none", script, c => c.Linux.SecurityContext.Capabilities = new Capability { DropCapabilities = { "ALL" } }));
        Assert.Equal(0UL, none["CapBnd"]);
        Assert.Equal(0UL, none["CapEff"]);
    }

    [Fact]
    public async Task No_new_privs_read_only_root_and_masked_and_read_only_paths_hold_inside()
    {
        await using var pod = await PodAsync("paths");
        Assert.Contains("NoNewPrivs:\t1", await RunAsync(pod, "nnp", "grep NoNewPrivs /proc/self/status", c => c.Linux.SecurityContext.NoNewPrivs = true));
        Assert.Contains("NoNewPrivs:\t0", await RunAsync(pod, "nnp-off", "grep NoNewPrivs /proc/self/status"));

        // critest ReadOnlyRootfs: "touch: test.go: Read-only file system".
        Assert.Contains("Read-only file system", await RunAsync(pod, "ro", "cd / && touch test.go 2>&1; true",
            c => c.Linux.SecurityContext.ReadonlyRootfs = true));
        Assert.Contains("Found", await RunAsync(pod, "rw", "cd / && touch test.go && [ -f test.go ] && echo Found"));

        // The defaults: /proc/timer_list (which this kernel has) reads as /dev/null, /proc/sys is mounted read-only.
        Assert.True(File.Exists("/proc/timer_list"), "the host has no /proc/timer_list to mask");
        var defaults = await RunAsync(pod, "defaults", "wc -c < /proc/timer_list; grep ' /proc/sys ' /proc/self/mountinfo");
        Assert.Equal("0", Lines(defaults)[0]);
        Assert.Contains(" ro,", Lines(defaults)[1]);

        // critest MaskedPaths and ReadonlyPaths.
        // Debian's static busybox runs a bare "ls" inside the shell; the path makes it exec the masked file.
        Assert.Contains("Permission denied", await RunAsync(pod, "masked", "/bin/ls 2>&1; true", c => c.Linux.SecurityContext.MaskedPaths.Add("/bin/ls")));
        Assert.Contains("touch: /tmp/test: Read-only file system", await RunAsync(pod, "readonly", "touch /tmp/test 2>&1; true",
            c => c.Linux.SecurityContext.ReadonlyPaths.Add("/tmp")));
    }

    [Fact]
    public async Task Seccomp_profiles_block_what_they_say()
    {
        await using var pod = await PodAsync("seccomp");
        const string sethostname = "grep '^Seccomp:' /proc/self/status; hostname crid-renamed 2>/dev/null && echo set || echo blocked";
        void SysAdmin(ContainerConfig c, string profile)
        {
            c.Linux.SecurityContext.SeccompProfilePath = profile;
            c.Linux.SecurityContext.Capabilities = new Capability { AddCapabilities = { "SYS_ADMIN" } };
        }

        // critest "docker/default": filtered, and sethostname only with CAP_SYS_ADMIN.
        var plain = Lines(await RunAsync(pod, "default", sethostname, c => c.Linux.SecurityContext.SeccompProfilePath = "runtime/default"));
        Assert.Equal(["Seccomp:\t2", "blocked"], plain);
        Assert.Equal(["Seccomp:\t2", "set"], Lines(await RunAsync(pod, "default-admin", sethostname, c => SysAdmin(c, "docker/default"))));
        // Unconfined with CAP_SYS_ADMIN may; a Localhost profile blocking it blocks it despite the capability.
        Assert.Equal(["Seccomp:\t0", "set"], Lines(await RunAsync(pod, "unconfined", sethostname, c => SysAdmin(c, "unconfined"))));
        Assert.Equal("blocked", Lines(await RunAsync(pod, "localhost", sethostname,
            c => SysAdmin(c, "localhost/" + Path.Combine(_dir, "block-hostname.json"))))[1]);
        Assert.Contains("Operation not permitted", await RunAsync(pod, "chmod", "chmod 400 / 2>&1; true",
            c => c.Linux.SecurityContext.SeccompProfilePath = "localhost/" + Path.Combine(_dir, "block-chmod.json")));

        // The default blocks what the capabilities alone would allow: a user namespace needs no capability.
        const string userns = "unshare -U true 2>/dev/null && echo made || echo blocked";
        Assert.Equal("blocked", (await RunAsync(pod, "userns-default", userns, c => c.Linux.SecurityContext.SeccompProfilePath = "runtime/default")).Trim());
        Assert.Equal("made", (await RunAsync(pod, "userns-unconfined", userns)).Trim());
    }

    [Fact]
    public async Task Privileged_gets_every_capability_the_daemon_holds_no_masks_and_no_seccomp()
    {
        await using var pod = await PodAsync("priv", privileged: true);
        const string script = "grep -E '^Cap(Bnd)|^Seccomp:' /proc/self/status; " +
            "mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo refused; wc -c < /proc/timer_list; " +
            "hostname crid-privileged 2>/dev/null && echo set || echo blocked";
        var privileged = Lines(await RunAsync(pod, "priv", script, c =>
        {
            c.Linux.SecurityContext.Privileged = true;
            // critest: a profile blocking sethostname is ignored for a privileged container.
            c.Linux.SecurityContext.SeccompProfilePath = "localhost/" + Path.Combine(_dir, "block-hostname.json");
        }));
        Assert.Equal($"CapBnd:\t{OwnMask("CapBnd"):x16}", privileged[0]);
        Assert.Equal(["Seccomp:\t0", "mounted"], privileged[1..3]);
        Assert.NotEqual("0", privileged[3]);
        Assert.Equal("set", privileged[4]);

        var unprivileged = Lines(await RunAsync(pod, "unpriv", script));
        Assert.Equal("refused", unprivileged[2]);
        Assert.Equal("0", unprivileged[3]);
    }

    [Fact]
    public async Task A_device_is_there_with_the_hosts_numbers_and_the_configs_permissions()
    {
        await using var pod = await PodAsync("device");
        // /dev/kmsg (1:11): a device runc does not allow by default, so only the config's rule lets it be opened.
        const string script = "stat -c '%F %t:%T' /dev/crid-kmsg; (exec 3>/dev/crid-kmsg) 2>/dev/null && echo opened || echo denied";
        var rw = Lines(await RunAsync(pod, "rw", script, c => c.Devices.Add(new Device { HostPath = "/dev/kmsg", ContainerPath = "/dev/crid-kmsg", Permissions = "rwm" })));
        Assert.Equal(["character special file 1:b", "opened"], rw);
        // The devices cgroup enforces the permissions: read-only means opening for writing is refused.
        var ro = Lines(await RunAsync(pod, "r", script, c => c.Devices.Add(new Device { HostPath = "/dev/kmsg", ContainerPath = "/dev/crid-kmsg", Permissions = "r" })));
        Assert.Equal(["character special file 1:b", "denied"], ro);
    }

    [Fact]
    public async Task Cgroup_limits_and_oom_score_adj_are_what_the_container_sees()
    {
        await using var pod = await PodAsync("limits");
        const string script =
            "if [ -f /sys/fs/cgroup/cgroup.controllers ]; then " +
            "cat /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; else " +
            "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; fi; " +
            "cat /proc/self/oom_score_adj";
        var seen = Lines(await RunAsync(pod, "limits", script, c => c.Linux.Resources = new LinuxContainerResources
        {
            CpuShares = 512,
            CpuPeriod = 100000,
            CpuQuota = 50000,
            MemoryLimitInBytes = 64 << 20,
            // kubelet's guaranteed-pod score: below what this daemon may set, so clamped to its own.
            OomScoreAdj = -998,
            // kubelet always sends these; without a mounted hugetlb controller runc would fail on them.
            HugepageLimits = { new global::Runtime.V1.HugepageLimit { PageSize = "2MB", Limit = 0 } },
        }, pids: 100));
        if (LinuxHostFacts.Instance.Cgroups.Unified)
            Assert.Equal(["20", "50000 100000", (64 << 20).ToString(CultureInfo.InvariantCulture), "100"], seen[..4]);
        else
            Assert.Equal(["512", "50000", (64 << 20).ToString(CultureInfo.InvariantCulture), "100"], seen[..4]);
        Assert.Equal(LinuxHostFacts.Instance.MinOomScoreAdj.ToString(CultureInfo.InvariantCulture), seen[4]);
        Assert.Equal("500", (await RunAsync(pod, "oom", "cat /proc/self/oom_score_adj",
            c => c.Linux.Resources = new LinuxContainerResources { OomScoreAdj = 500 })).Trim());
    }

    [Fact]
    public async Task Host_paths_are_bound_read_only_or_writable_created_when_missing_and_followed_through_symlinks()
    {
        await using var pod = await PodAsync("volumes");
        var data = Directory.CreateDirectory(Path.Combine(_dir, "data")).FullName;
        File.WriteAllText(Path.Combine(data, "flag"), "");
        var link = Path.Combine(_dir, "data-link");
        File.CreateSymbolicLink(link, data);
        var missing = Path.Combine(_dir, "missing", "deep");
        var seen = Lines(await RunAsync(pod, "mounts",
            "ls -A /ro; touch /ro/x 2>/dev/null && echo ro-written || echo ro-refused; touch /rw/made && echo rw-written; ls -A /link; " +
            "touch /made/here && echo made-written; touch /vol/v && echo volume-written",
            c =>
            {
                c.Linux.SecurityContext.ReadonlyRootfs = true;
                c.Mounts.Add(new global::Runtime.V1.Mount { HostPath = data, ContainerPath = "/ro", Readonly = true });
                c.Mounts.Add(new global::Runtime.V1.Mount { HostPath = data, ContainerPath = "/rw" });
                c.Mounts.Add(new global::Runtime.V1.Mount { HostPath = link, ContainerPath = "/link" });
                c.Mounts.Add(new global::Runtime.V1.Mount { HostPath = missing, ContainerPath = "/made" });
            },
            image: TestRootfs.Image with { Config = TestRootfs.Image.Config with { Volumes = ["/vol"] } }));
        Assert.Equal(["flag", "ro-refused", "rw-written", "flag", "made", "made-written", "volume-written"], seen);
        Assert.True(File.Exists(Path.Combine(data, "made")));
        Assert.True(File.Exists(Path.Combine(missing, "here")));
    }

    [Theory]
    [InlineData(MountPropagation.PropagationPrivate, false, false)]
    [InlineData(MountPropagation.PropagationHostToContainer, true, false)]
    [InlineData(MountPropagation.PropagationBidirectional, true, true)]
    public async Task Mount_propagation_goes_the_ways_the_mode_says(MountPropagation mode, bool hostToContainer, bool containerToHost)
    {
        // critest's setup: the source is bound onto itself and made rshared (or rprivate for private).
        var base_ = Directory.CreateDirectory(Path.Combine(_dir, "prop")).FullName;
        var mnt = Directory.CreateDirectory(Path.Combine(base_, "mnt")).FullName;
        var hostMnt = Directory.CreateDirectory(Path.Combine(mnt, "propagationMnt")).FullName;
        var source = Directory.CreateDirectory(Path.Combine(base_, "source")).FullName;
        File.WriteAllText(Path.Combine(source, "flagFile"), "");
        Exec("mount", "--bind", mnt, mnt);
        _hostMounts.Add(mnt);
        Exec("mount", mode == MountPropagation.PropagationPrivate ? "--make-rprivate" : "--make-rshared", mnt);

        await using var pod = await PodAsync("prop", privileged: true);
        var id = await RunDetachedAsync(pod, "prop", "sleep 300", c =>
        {
            c.Linux.SecurityContext.Privileged = true;
            c.Mounts.Add(new global::Runtime.V1.Mount { HostPath = mnt, ContainerPath = mnt, Propagation = mode });
        });

        Exec("mount", "--bind", source, hostMnt);
        _hostMounts.Add(hostMnt);
        var inside = await _runc.ExecInAsync(id, "ls", "-A", hostMnt);
        Assert.Equal(hostToContainer, inside.Contains("flagFile"));

        var containerMnt = Path.Combine(mnt, "containerMnt");
        await _runc.ExecInAsync(id, "mkdir", "-p", containerMnt);
        await _runc.ExecInAsync(id, "mount", "--bind", "/etc", containerMnt);
        if (containerToHost)
            _hostMounts.Add(containerMnt);
        Assert.Equal(containerToHost, Directory.EnumerateFileSystemEntries(containerMnt).Any());
    }

    // ---- pods and containers ----

    private sealed class Pod(DaemonProcess daemon, string id, Sandbox sandbox, RuncSpecTests owner) : IAsyncDisposable
    {
        public Sandbox Sandbox { get; } = sandbox;

        public async ValueTask DisposeAsync()
        {
            try
            {
                foreach (var c in owner._containers)
                    await owner._runc.DeleteAsync(c);
                Assert.Empty(await owner._runc.ListAsync());
                await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
                await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
                Assert.Empty(Cleanup.NsfsMountsUnder(daemon.Dir));
            }
            finally
            {
                await daemon.DisposeAsync();
            }
        }
    }

    private async Task<Pod> PodAsync(string name, bool privileged = false)
    {
        var d = await DaemonProcess.StartAsync();
        var config = SandboxTests.Minimal(name);
        config.Linux.CgroupParent = _cgroupParent;
        config.Linux.SecurityContext.Privileged = privileged;
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
        var dir = Path.Combine(d.StateDir, "sandboxes", id);
        return new Pod(d, id, SandboxRecord.Load(dir), this);
    }

    private async Task<string> RunAsync(Pod pod, string name, string script, Action<ContainerConfig>? edit = null, long? pids = null, ContainerImage? image = null)
    {
        var id = ContainerId(name);
        return await _runc.RunAsync(Bundle(pod.Sandbox, id, name, script, edit, pids, image), id);
    }

    private async Task<string> RunDetachedAsync(Pod pod, string name, string script, Action<ContainerConfig>? edit = null)
    {
        var id = ContainerId(name);
        await _runc.RunDetachedAsync(Bundle(pod.Sandbox, id, name, script, edit, null, null), id);
        return id;
    }

    private string ContainerId(string name)
    {
        var id = $"crid-test-{_tag}-{name}";
        _containers.Add(id);
        return id;
    }

    private string Bundle(Sandbox sandbox, string id, string name, string script, Action<ContainerConfig>? edit, long? pids, ContainerImage? image)
    {
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = name },
            Image = new ImageSpec { Image = "busybox" },
            Command = { "sh", "-c", script },
            Linux = new LinuxContainerConfig { SecurityContext = new LinuxContainerSecurityContext() },
        };
        edit?.Invoke(config);
        var bundle = Path.Combine(_dir, "bundles", id);
        Directory.CreateDirectory(bundle);
        var spec = ContainerSpecs.Build(new ContainerSpecRequest
        {
            Id = id,
            Config = config,
            Pod = PodSpecContext.From(sandbox),
            Image = image ?? TestRootfs.Image,
            RootfsPath = Rootfs,
            VolumesDir = Path.Combine(bundle, "volumes"),
            PidsLimit = pids,
        }, LinuxHostFacts.Instance);
        File.WriteAllBytes(Path.Combine(bundle, "config.json"), ContainerSpecs.Serialize(spec));
        return bundle;
    }

    // ---- reading what the container printed ----

    private static string[] Lines(string output) => output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static Dictionary<string, ulong> Caps(string output) =>
        Lines(output).Select(l => l.Split(':', 2)).ToDictionary(p => p[0], p => ulong.Parse(p[1].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture));

    private static ulong Mask(IEnumerable<string> caps) =>
        caps.Aggregate(0UL, (m, c) => m | (1UL << CapabilityNames.All.ToList().IndexOf(c)));

    private static ulong OwnMask(string field) =>
        ulong.Parse(File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith(field + ":", StringComparison.Ordinal)).Split(':')[1].Trim(),
            NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static void Exec(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {p.ExitCode}: {error}");
    }
}
