using Crid.Core.Oci;
using Crid.Core.Sandboxes;
using Crid.Linux;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// The pid-1 experiment: pods made by the real daemon, containers made by the real runc from specs
/// the <see cref="ContainerSpecBuilder"/> derives. A spec is only right when runc accepts it and the
/// container lands in the pod's namespaces; each container prints what it sees and exits.
/// </summary>
public sealed class RuncPodTests : IAsyncLifetime
{
    /// <summary>What every probe container prints, one key=value a line.</summary>
    private const string Probe =
        "echo pid=$$; " +
        "for t in net ipc uts pid user mnt; do echo ns_$t=$(readlink /proc/self/ns/$t); done; " +
        "echo hostname=$(hostname); " +
        "echo somaxconn=$(cat /proc/sys/net/core/somaxconn); " +
        "echo shmmni=$(cat /proc/sys/kernel/shmmni); " +
        "echo uid_map=$(cat /proc/self/uid_map); " +
        "echo cgroups=$(cat /proc/self/cgroup | tr '\\n' ' '); " +
        "echo resolv=$(cat /etc/resolv.conf | tr '\\n' '|')";

    // The applets the probes use, each a symlink to the one static busybox.
    private static readonly string[] Applets = ["sh", "cat", "echo", "mv", "readlink", "hostname", "sleep", "tr", "ls", "id", "ps", "touch"];

    private readonly string _dir = Directory.CreateTempSubdirectory("crid-runc-").FullName;
    private readonly string _tag = Guid.NewGuid().ToString("N")[..10];
    private readonly List<string> _containers = [];
    private readonly List<string> _cgroupParents = [];
    private readonly string _defaultCgroupParent;
    private Runc _runc = null!;

    public RuncPodTests()
    {
        // Containers of a pod without a cgroup parent go under this one, the test's own, instead of /crid.
        _defaultCgroupParent = "/crid-test-" + _tag + "-default";
        _cgroupParents.Add(_defaultCgroupParent);
    }

    private string Rootfs => Path.Combine(_dir, "rootfs");

    public Task InitializeAsync()
    {
        // A container in a user namespace runs as host uid 100000, and runc 1.1 bind-mounts the rootfs
        // from inside that namespace ("mount rootfs: permission denied" otherwise): the folders down
        // to the rootfs must be searchable by anyone, and temp folders are created 0700.
        File.SetUnixFileMode(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        TestRootfs.Build(Rootfs, Applets);
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
            // rmdir of a cgroup that still holds one (runc delete failed) throws: the test fails loudly.
            foreach (var parent in _cgroupParents)
                RemoveCgroupParent(parent);
        }
        finally
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public async Task Two_containers_of_a_pod_are_each_pid_1_and_share_the_pods_net_ipc_and_uts()
    {
        await using var d = await DaemonProcess.StartAsync();
        var config = SandboxTests.Minimal("pid1", NamespaceMode.Container);
        config.Hostname = "pid1-host";
        config.DnsConfig = new DNSConfig { Servers = { "10.96.0.10" }, Searches = { "test.svc.cluster.local" }, Options = { "ndots:5" } };
        // A test-owned cgroup parent, so runc's cgroups can be found and removed whatever happens.
        config.Linux.CgroupParent = "/crid-test-" + _tag;
        _cgroupParents.Add(config.Linux.CgroupParent);
        var (podId, sandbox) = await RunPodAsync(d, config);

        // a stays alive while b runs, so both pid namespaces exist at once (a namespace's inode is
        // reused once it is gone, so two containers one after the other could not be told apart).
        var a = await ProbeDetachedAsync(sandbox, null, "a");
        var b = await ProbeAsync(sandbox, new NamespaceOption { Pid = NamespaceMode.Container }, "b");

        foreach (var seen in new[] { a, b })
        {
            Assert.Equal("1", seen["pid"]);
            Assert.Equal(NsLink("net", sandbox.Pins["net"]), seen["ns_net"]);
            Assert.Equal(NsLink("ipc", sandbox.Pins["ipc"]), seen["ns_ipc"]);
            Assert.Equal(NsLink("uts", sandbox.Pins["uts"]), seen["ns_uts"]);
            Assert.Equal("pid1-host", seen["hostname"]);
            Assert.Equal("nameserver 10.96.0.10|search test.svc.cluster.local|options ndots:5|", seen["resolv"]);
            Assert.Equal(HostLink("user"), seen["ns_user"]);
            // runc put the container under the pod's cgroup parent (cgroup v1 paths in /proc/self/cgroup).
            Assert.Contains($"{config.Linux.CgroupParent}/crid-{seen.Id}", seen["cgroups"]);
        }
        // Each its own pid and mount namespace, neither the host's.
        Assert.NotEqual(a["ns_pid"], b["ns_pid"]);
        Assert.NotEqual(a["ns_mnt"], b["ns_mnt"]);
        Assert.NotEqual(HostLink("pid"), a["ns_pid"]);
        Assert.NotEqual(HostLink("mnt"), a["ns_mnt"]);
        // Seen from the host: a's init is PID 1 in its own namespace (NSpid lists host pid, then 1).
        var aPid = await _runc.PidOfAsync(a.Id);
        Assert.EndsWith("\t1", File.ReadAllLines($"/proc/{aPid}/status").Single(l => l.StartsWith("NSpid:", StringComparison.Ordinal)));
        Assert.Equal(a["ns_pid"], new FileInfo($"/proc/{aPid}/ns/pid").LinkTarget);

        await RemovePodAsync(d, podId, a, b);
    }

    [Fact]
    public async Task The_containers_of_a_pod_share_its_dev_shm()
    {
        await using var d = await DaemonProcess.StartAsync();
        var (podId, sandbox) = await RunPodAsync(d, SandboxTests.Minimal("shm", NamespaceMode.Container));
        var writer = ContainerId("writer");
        await _runc.RunAsync(Bundle(sandbox, null, writer, ["sh", "-c", "echo shared-by-the-pod > /dev/shm/note"]), writer);
        var reader = ContainerId("reader");
        Assert.Equal("shared-by-the-pod", (await _runc.RunAsync(Bundle(sandbox, null, reader, ["cat", "/dev/shm/note"]), reader)).Trim());
        await RemovePodAsync(d, podId);
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(d.Dir, StringComparison.Ordinal));
    }

    [Fact]
    public async Task With_pid_POD_a_container_sees_its_pods_infra_as_pid_1_and_the_other_containers()
    {
        await using var d = await DaemonProcess.StartAsync();
        var (podId, sandbox) = await RunPodAsync(d, SandboxTests.Minimal("pidpod"));
        var pod = new NamespaceOption { Pid = NamespaceMode.Pod };

        var sleeper = ContainerId("sleeper");
        await _runc.RunDetachedAsync(Bundle(sandbox, pod, sleeper, ["sleep", "300"]), sleeper);
        var sleeperPid = await _runc.PidOfAsync(sleeper);
        Assert.Equal(NsLink("pid", sandbox.Pins["pid"]), new FileInfo($"/proc/{sleeperPid}/ns/pid").LinkTarget);

        var lister = ContainerId("lister");
        var listing = await _runc.RunAsync(Bundle(sandbox, pod, lister,
            ["sh", "-c", "for p in /proc/[0-9]*; do echo \"${p#/proc/} $(cat $p/cmdline | tr '\\0' ' ')\"; done"]), lister);
        var processes = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
        Assert.Contains("pause", processes["1"]);
        Assert.Contains(processes.Values, c => c.StartsWith("sleep 300", StringComparison.Ordinal));
        Assert.DoesNotContain(processes.Keys, pid => pid == sleeperPid.ToString());

        // runc exec joins the same namespaces as the container's init.
        Assert.Contains("pause", await _runc.ExecInAsync(sleeper, "cat", "/proc/1/cmdline"));

        await _runc.DeleteAsync(sleeper);
        Assert.False(Directory.Exists($"/proc/{sleeperPid}") && !SandboxTests.IsGoneOrZombie(sleeperPid), "runc delete -f left the container's process");
        await RemovePodAsync(d, podId);
    }

    [Fact]
    public async Task With_the_hosts_network_ipc_and_pid_a_container_is_in_the_hosts_namespaces_but_the_pods_uts()
    {
        await using var d = await DaemonProcess.StartAsync();
        var config = SandboxTests.Minimal("hostns", NamespaceMode.Node);
        var host = new NamespaceOption { Network = NamespaceMode.Node, Ipc = NamespaceMode.Node, Pid = NamespaceMode.Node };
        config.Linux.SecurityContext.NamespaceOptions = host;
        var (podId, sandbox) = await RunPodAsync(d, config);
        Assert.Equal(["uts"], sandbox.Pins.Keys);

        var seen = await ProbeAsync(sandbox, host, "h");
        Assert.Equal(HostLink("net"), seen["ns_net"]);
        Assert.Equal(HostLink("ipc"), seen["ns_ipc"]);
        Assert.Equal(HostLink("pid"), seen["ns_pid"]);
        Assert.NotEqual("1", seen["pid"]);
        // cri-o's rule, kept by the daemon: even on the host network a pod has a uts namespace of its
        // own, holding the node's name, so a container cannot rename the node.
        Assert.Equal(NsLink("uts", sandbox.Pins["uts"]), seen["ns_uts"]);
        Assert.NotEqual(HostLink("uts"), seen["ns_uts"]);
        Assert.Equal(Environment.MachineName, seen["hostname"]);
        Assert.NotEqual(HostLink("mnt"), seen["ns_mnt"]);

        await RemovePodAsync(d, podId, seen);
    }

    [Fact]
    public async Task In_a_user_namespaced_pod_a_container_sees_the_pods_mapping_and_sysctls()
    {
        await using var d = await DaemonProcess.StartAsync();
        var config = SandboxTests.Minimal("userns", NamespaceMode.Container);
        var mapping = new IDMapping { ContainerId = 0, HostId = 100000, Length = 65536 };
        config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { mapping }, Gids = { mapping } };
        // A net and an ipc sysctl: runc writes them again inside, as root of the pod's user namespace.
        config.Linux.Sysctls["net.core.somaxconn"] = "2048";
        config.Linux.Sysctls["kernel.shmmni"] = "2000";
        var (podId, sandbox) = await RunPodAsync(d, config);

        var seen = await ProbeAsync(sandbox, null, "u");
        Assert.Equal("0 100000 65536", string.Join(' ', seen["uid_map"].Split(' ', StringSplitOptions.RemoveEmptyEntries)));
        Assert.Equal(NsLink("user", sandbox.Pins["user"]), seen["ns_user"]);
        Assert.Equal(NsLink("net", sandbox.Pins["net"]), seen["ns_net"]);
        Assert.Equal("2048", seen["somaxconn"]);
        Assert.Equal("2000", seen["shmmni"]);
        Assert.Equal("1", seen["pid"]);

        await RemovePodAsync(d, podId, seen);
    }

    [Fact]
    public async Task In_a_user_namespaced_pod_with_pid_POD_a_container_sees_the_infra_as_pid_1_and_the_pods_mapping()
    {
        await using var d = await DaemonProcess.StartAsync();
        var config = SandboxTests.Minimal("usernspid");
        var mapping = new IDMapping { ContainerId = 0, HostId = 100000, Length = 65536 };
        config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { mapping }, Gids = { mapping } };
        var (podId, sandbox) = await RunPodAsync(d, config);
        // ioctl_ns(2) NS_GET_USERNS: the pinned pid namespace belongs to the pod's user namespace.
        Assert.Equal(PinnedNamespace.FromPath(sandbox.Pins["user"]).Inode, NsFiles.OwnerUserNamespace(sandbox.Pins["pid"]));
        var pod = new NamespaceOption { Pid = NamespaceMode.Pod };

        var seen = await ProbeDetachedAsync(sandbox, pod, "up");
        Assert.Equal(NsLink("pid", sandbox.Pins["pid"]), seen["ns_pid"]);
        Assert.Equal(NsLink("user", sandbox.Pins["user"]), seen["ns_user"]);
        Assert.Equal(NsLink("net", sandbox.Pins["net"]), seen["ns_net"]);
        Assert.Equal("0 100000 65536", string.Join(' ', seen["uid_map"].Split(' ', StringSplitOptions.RemoveEmptyEntries)));
        Assert.NotEqual("1", seen["pid"]);

        // The infra is PID 1 of the container's pid namespace, and runc exec joins it as well.
        var lister = ContainerId("uplister");
        var listing = await _runc.RunAsync(Bundle(sandbox, pod, lister, ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/1/status"]), lister);
        Assert.Contains("pause", listing.Split('\n')[0]);
        // The pod's root, seen from inside its user namespace.
        Assert.Contains(listing.Split('\n'), l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1..].All(v => v == "0"));
        Assert.Contains("pause", await _runc.ExecInAsync(seen.Id, "cat", "/proc/1/cmdline"));

        await RemovePodAsync(d, podId, seen);
    }

    [Fact]
    public async Task In_a_user_namespaced_pod_on_the_hosts_network_and_ipc_sys_is_the_hosts_bound_read_only()
    {
        await using var d = await DaemonProcess.StartAsync();
        var config = SandboxTests.Minimal("usernshost", NamespaceMode.Container);
        var mapping = new IDMapping { ContainerId = 0, HostId = 100000, Length = 65536 };
        var ns = config.Linux.SecurityContext.NamespaceOptions;
        ns.Network = NamespaceMode.Node;
        ns.Ipc = NamespaceMode.Node;
        ns.UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { mapping }, Gids = { mapping } };
        var (podId, sandbox) = await RunPodAsync(d, config);

        // runc 1.1 refuses a sysfs mount here with EPERM: the host's network namespace is not the pod
        // user namespace's (see SandboxSpec.Mounts).
        var seen = await ProbeAsync(sandbox, null, "uh");
        Assert.Equal(HostLink("net"), seen["ns_net"]);
        Assert.Equal(HostLink("ipc"), seen["ns_ipc"]);
        Assert.Equal(NsLink("user", sandbox.Pins["user"]), seen["ns_user"]);
        Assert.Equal("0 100000 65536", string.Join(' ', seen["uid_map"].Split(' ', StringSplitOptions.RemoveEmptyEntries)));
        var sys = ContainerId("sys");
        var listing = await _runc.RunAsync(Bundle(sandbox, null, sys, ["sh", "-c", "ls /sys/class/net; if touch /sys/crid-probe 2>/dev/null; then echo writable; else echo read-only; fi"]), sys);
        var lines = listing.Split('\n');
        Assert.Contains("lo", lines);
        Assert.Contains("read-only", lines);

        await RemovePodAsync(d, podId, seen);
    }

    [Fact]
    public async Task A_pod_sysctl_is_what_a_container_reads()
    {
        await using var d = await DaemonProcess.StartAsync();
        var config = SandboxTests.Minimal("sysctl", NamespaceMode.Container);
        config.Linux.Sysctls["net.core.somaxconn"] = "3072";
        var (podId, sandbox) = await RunPodAsync(d, config);

        var seen = await ProbeAsync(sandbox, null, "s");
        Assert.Equal("3072", seen["somaxconn"]);
        // The host keeps its own value: the sysctl belongs to the pod's network namespace.
        Assert.NotEqual("3072", File.ReadAllText("/proc/sys/net/core/somaxconn").Trim());

        await RemovePodAsync(d, podId, seen);
    }

    private sealed class Seen(string id, Dictionary<string, string> values)
    {
        public string Id { get; } = id;
        public string this[string key] => values.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"container {Id} printed no {key}");
    }

    /// <summary>Runs the probe in a new container of the pod, in the foreground, and parses what it printed.</summary>
    private async Task<Seen> ProbeAsync(Sandbox sandbox, NamespaceOption? namespaces, string name)
    {
        var id = ContainerId(name);
        return Parse(id, await _runc.RunAsync(Bundle(sandbox, namespaces, id, ["sh", "-c", Probe]), id));
    }

    private static Seen Parse(string id, string output)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = line.IndexOf('=');
            values[line[..eq]] = line[(eq + 1)..].Trim();
        }
        return new Seen(id, values);
    }

    /// <summary>
    /// Runs the probe in a detached container that stays alive afterwards; its output goes to a file
    /// in the (shared, writable) rootfs, named by the container id, which the host reads.
    /// </summary>
    private async Task<Seen> ProbeDetachedAsync(Sandbox sandbox, NamespaceOption? namespaces, string name)
    {
        var id = ContainerId(name);
        var file = $"/tmp/{id}.probe";
        await _runc.RunDetachedAsync(Bundle(sandbox, namespaces, id, ["sh", "-c", $"{{ {Probe}; }} > {file}.tmp && mv {file}.tmp {file}; exec sleep 300"]), id);
        var onHost = Rootfs + file;
        // The rename makes the file appear whole; the deadline only guards against a container that never writes it.
        for (var waited = 0; !File.Exists(onHost); waited += 10)
        {
            if (waited > 30_000)
                throw new TimeoutException($"container {id} wrote no {file} in 30 s");
            await Task.Delay(10);
        }
        return Parse(id, File.ReadAllText(onHost));
    }

    private string ContainerId(string name)
    {
        var id = $"crid-test-{_tag}-{name}";
        _containers.Add(id);
        return id;
    }

    private string Bundle(Sandbox sandbox, NamespaceOption? namespaces, string id, string[] args)
    {
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = id },
            Image = new ImageSpec { Image = "busybox" },
            Command = { args },
            Linux = new LinuxContainerConfig { SecurityContext = new LinuxContainerSecurityContext { NamespaceOptions = namespaces } },
        };
        var spec = ContainerSpecs.Build(new ContainerSpecRequest
        {
            Id = id,
            Config = config,
            Pod = PodSpecContext.From(sandbox),
            Image = TestRootfs.Image,
            RootfsPath = Rootfs,
            DefaultCgroupParent = _defaultCgroupParent,
        }, LinuxHostFacts.Instance);
        var bundle = Path.Combine(_dir, "bundles", id);
        Directory.CreateDirectory(bundle);
        File.WriteAllBytes(Path.Combine(bundle, "config.json"), ContainerSpecs.Serialize(spec));
        return bundle;
    }

    /// <summary>RunPodSandbox through the daemon, then the sandbox as the daemon recorded it.</summary>
    private static async Task<(string Id, Sandbox Sandbox)> RunPodAsync(DaemonProcess d, PodSandboxConfig config)
    {
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
        var dir = Path.Combine(d.StateDir, "sandboxes", id);
        return (id, SandboxRecord.Load(dir));
    }

    /// <summary>Deletes the containers, stops and removes the pod, and checks that nothing of any of it remains.</summary>
    private async Task RemovePodAsync(DaemonProcess d, string podId, params Seen[] probed)
    {
        foreach (var id in _containers)
            await _runc.DeleteAsync(id);
        Assert.Empty(await _runc.ListAsync());
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "sandboxes")));
        // runc removes a container's cgroups when it deletes it; the folders it saw must be gone.
        foreach (var seen in probed)
        {
            foreach (var folder in CgroupFolders(seen["cgroups"]))
                Assert.False(Directory.Exists(folder), $"{folder} is left behind");
        }
    }

    /// <summary>The readlink(2) text of a pinned namespace, as /proc/self/ns/&lt;type&gt; shows it inside.</summary>
    private static string NsLink(string type, string pin) => $"{type}:[{PinnedNamespace.FromPath(pin).Inode}]";

    private static string HostLink(string type) => new FileInfo($"/proc/self/ns/{type}").LinkTarget!;

    /// <summary>
    /// The host folders of the cgroups listed in a /proc/self/cgroup ("id:controllers:path"): cgroup v1
    /// hierarchies are mounted under /sys/fs/cgroup by controller name, name=systemd at systemd, v2 at unified.
    /// </summary>
    private static IEnumerable<string> CgroupFolders(string procSelfCgroup)
    {
        foreach (var line in procSelfCgroup.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split(':', 3);
            if (fields.Length != 3 || fields[2] == "/")
                continue;
            var hierarchy = fields[1] switch { "" => "unified", var c when c.StartsWith("name=") => c["name=".Length..], var c => c };
            yield return "/sys/fs/cgroup/" + hierarchy + fields[2];
        }
    }

    /// <summary>runc creates the parent folders of a cgroupsPath in every hierarchy and leaves them: the test removes them.</summary>
    private static void RemoveCgroupParent(string parent)
    {
        foreach (var hierarchy in Directory.EnumerateDirectories("/sys/fs/cgroup"))
        {
            var folder = hierarchy + parent;
            if (Directory.Exists(folder))
                Directory.Delete(folder);
        }
    }
}
