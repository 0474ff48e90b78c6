using System.Diagnostics;
using System.Text.Json;
using Crid.Core.Sandboxes;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>crictl runp / inspectp / pods / stopp / rmp, through the real daemon and socket.</summary>
public sealed class SandboxTests
{
    public static TheoryData<string> Configs()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.EnumerateFiles(Path.Combine(RepoPaths.Vectors, "configs")).Order())
            data.Add(f);
        foreach (var f in Directory.EnumerateFiles(Path.Combine(RepoPaths.TestData, "sandboxes")).Order())
            data.Add(f);
        return data;
    }

    [Fact]
    public void There_are_configs_to_run() => Assert.True(Configs().Count >= 8, "expected the recorded and the project's sandbox configs");

    [Theory]
    [MemberData(nameof(Configs))]
    public async Task Whole_lifecycle_of_each_config(string file)
    {
        await using var d = await DaemonProcess.StartAsync();
        var config = SandboxConfigFile.Load(file);
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
        Assert.Matches("^[0-9a-f]{64}$", id);

        // inspectp: the spec's namespace paths are the pins on disk, each a live nsfs mount.
        var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true });
        Assert.Equal(PodSandboxState.SandboxReady, status.Status.State);
        Assert.Equal(config.Metadata, status.Status.Metadata);
        Assert.True(status.Status.CreatedAt > 0);
        Assert.Equal(config.Labels, status.Status.Labels);
        using var info = JsonDocument.Parse(status.Info["info"]);
        var pins = info.RootElement.GetProperty("pins").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        var specNamespaces = info.RootElement.GetProperty("runtimeSpec").GetProperty("linux").GetProperty("namespaces")
            .EnumerateArray().ToDictionary(n => n.GetProperty("type").GetString()!, n => n.TryGetProperty("path", out var p) ? p.GetString() : null);
        var mounts = Cleanup.NsfsMountsUnder(d.NamespacesDir);
        foreach (var (type, path) in pins)
        {
            Assert.Contains(path, mounts);
            Assert.Equal(path, specNamespaces[type == "net" ? "network" : type]);
        }
        Assert.Equal(mounts.Order(), pins.Values.Order());
        var ns = config.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption();
        Assert.Equal(ns.Network != NamespaceMode.Node, pins.ContainsKey("net"));
        Assert.Equal(ns.Ipc != NamespaceMode.Node, pins.ContainsKey("ipc"));
        Assert.True(pins.ContainsKey("uts"));
        Assert.Equal(ns.UsernsOptions?.Mode == NamespaceMode.Pod, pins.ContainsKey("user"));
        Assert.Equal(ns.Pid == NamespaceMode.Pod, pins.ContainsKey("pid"));
        Assert.Equal(ns.Pid != NamespaceMode.Node, specNamespaces.ContainsKey("pid"));
        if (ns.Pid == NamespaceMode.Container)
            Assert.Null(specNamespaces["pid"]);
        Assert.Null(specNamespaces["mount"]);
        Assert.Equal(ns.Pid == NamespaceMode.Pod, info.RootElement.GetProperty("infraPid").GetInt32() > 0);

        // pods, with each filter.
        Assert.Single((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items, p => p.Id == id);
        Assert.Single((await d.Runtime.ListPodSandboxAsync(Filter(new PodSandboxFilter { Id = id[..12] }))).Items);
        Assert.Empty((await d.Runtime.ListPodSandboxAsync(Filter(new PodSandboxFilter { Id = "ffff" + id[4..12] }))).Items);
        Assert.Single((await d.Runtime.ListPodSandboxAsync(Filter(Ready(PodSandboxState.SandboxReady)))).Items);
        Assert.Empty((await d.Runtime.ListPodSandboxAsync(Filter(Ready(PodSandboxState.SandboxNotready)))).Items);
        var labelled = new PodSandboxFilter { LabelSelector = { config.Labels } };
        Assert.Single((await d.Runtime.ListPodSandboxAsync(Filter(labelled))).Items);
        Assert.Empty((await d.Runtime.ListPodSandboxAsync(Filter(new PodSandboxFilter { LabelSelector = { ["app"] = "nope" } }))).Items);

        // stopp: pins unmounted and deleted; stopp again is fine.
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
        Assert.Empty(Cleanup.NsfsMountsUnder(d.NamespacesDir));
        foreach (var path in pins.Values)
            Assert.False(File.Exists(path), path);
        Assert.Equal(PodSandboxState.SandboxNotready, (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status.State);
        Assert.Single((await d.Runtime.ListPodSandboxAsync(Filter(Ready(PodSandboxState.SandboxNotready)))).Items);
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });

        // rmp, then rmp again; the sandbox and its folder are gone.
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        Assert.Empty((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "sandboxes")));
        var gone = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task The_spec_carries_the_pod_settings()
    {
        await using var d = await DaemonProcess.StartAsync();
        var config = SandboxConfigFile.Load(Path.Combine(RepoPaths.Vectors, "configs", "pod_default.json"));
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
        var dir = Path.Combine(d.StateDir, "sandboxes", id);
        using var spec = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json")));
        var root = spec.RootElement;
        Assert.StartsWith("1.", root.GetProperty("ociVersion").GetString());
        Assert.Equal("nginx-host", root.GetProperty("hostname").GetString());
        Assert.Equal("/pause", root.GetProperty("process").GetProperty("args")[0].GetString());
        Assert.True(root.GetProperty("root").GetProperty("readonly").GetBoolean());
        var annotations = root.GetProperty("annotations");
        Assert.Equal("sandbox", annotations.GetProperty("io.kubernetes.cri.container-type").GetString());
        Assert.Equal(id, annotations.GetProperty("io.kubernetes.cri.sandbox-id").GetString());
        Assert.Equal("nginx-sandbox", annotations.GetProperty("io.kubernetes.cri.sandbox-name").GetString());
        Assert.Equal("default", annotations.GetProperty("io.kubernetes.cri.sandbox-namespace").GetString());
        Assert.Equal("b8f2c6a4-5d1e-4c3b-9a7f-2e6d1c0b9a85", annotations.GetProperty("io.kubernetes.cri.sandbox-uid").GetString());
        Assert.Equal("/var/log/pods/default_nginx-sandbox", annotations.GetProperty("io.kubernetes.cri.sandbox-log-directory").GetString());
        Assert.Equal("team-a", annotations.GetProperty("example.com/owner").GetString());
        Assert.StartsWith("/kubepods/besteffort/podb8f2c6a4/", root.GetProperty("linux").GetProperty("cgroupsPath").GetString());
        var mounts = root.GetProperty("mounts").EnumerateArray().ToDictionary(m => m.GetProperty("destination").GetString()!);
        Assert.Equal(Path.Combine(dir, "resolv.conf"), mounts["/etc/resolv.conf"].GetProperty("source").GetString());
        Assert.Contains("ro", mounts["/etc/resolv.conf"].GetProperty("options").EnumerateArray().Select(o => o.GetString()));
        Assert.Equal(Path.Combine(dir, "hostname"), mounts["/etc/hostname"].GetProperty("source").GetString());
        // The pod's one /dev/shm tmpfs, bound into each container so they share it.
        Assert.Equal(Path.Combine(dir, "shm"), mounts["/dev/shm"].GetProperty("source").GetString());
        Assert.Contains(Path.Combine(dir, "shm"), File.ReadAllLines("/proc/self/mountinfo").Where(l => l.Contains(" - tmpfs ")).Select(l => l.Split(' ')[4]));
        Assert.Equal("nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n",
            File.ReadAllText(Path.Combine(dir, "resolv.conf")));
        Assert.Equal("nginx-host\n", File.ReadAllText(Path.Combine(dir, "hostname")));
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
    }

    [Fact]
    public async Task Hostname_defaults_to_the_id_prefix_and_uts_is_always_pinned()
    {
        await using var d = await DaemonProcess.StartAsync();
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Minimal("h") })).PodSandboxId;
        Assert.Equal(id[..12] + "\n", File.ReadAllText(Path.Combine(d.StateDir, "sandboxes", id, "hostname")));
        var uts = Directory.EnumerateFiles(Path.Combine(d.NamespacesDir, "utsns")).Single();
        Assert.Equal(id[..12], Nsenter($"--uts={uts}", "hostname").Trim());
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
    }

    [Fact]
    public async Task A_duplicate_name_is_AlreadyExists_naming_the_holder_and_Remove_frees_it()
    {
        await using var d = await DaemonProcess.StartAsync();
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Minimal("dup") })).PodSandboxId;
        var e = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Minimal("dup") }).ResponseAsync);
        Assert.Equal(StatusCode.AlreadyExists, e.StatusCode);
        Assert.Contains(id, e.Status.Detail);
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id[..10] });
        var again = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Minimal("dup") })).PodSandboxId;
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = again });
    }

    [Fact]
    public async Task Unknown_ids_stop_and_remove_fine_but_have_no_status()
    {
        await using var d = await DaemonProcess.StartAsync();
        var unknown = new string('a', 64);
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = unknown });
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = unknown });
        var e = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = unknown }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        var empty = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
        Assert.Contains("pod_sandbox_id", empty.Status.Detail);
    }

    [Fact]
    public async Task An_ambiguous_prefix_is_an_error()
    {
        await using var d = await DaemonProcess.StartAsync();
        var ids = new List<string>();
        for (var i = 0; ids.Count < 2 || ids.Select(x => x[0]).Distinct().Count() == ids.Count; i++)
            ids.Add((await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Minimal($"amb{i}") })).PodSandboxId);
        var shared = ids.GroupBy(x => x[0]).First(g => g.Count() > 1).Key.ToString();
        var e = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = shared }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("more than one", e.Status.Detail);
        foreach (var id in ids)
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
    }

    [Fact]
    public async Task A_failing_sysctl_leaves_nothing_behind()
    {
        await using var d = await DaemonProcess.StartAsync();
        var config = Minimal("sysctl");
        config.Linux = new LinuxPodSandboxConfig { Sysctls = { ["net.core.somaxconn"] = "1024", ["net.ipv4.ip_local_port_range"] = "not numbers" } };
        var e = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("sysctl", e.Status.Detail);
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "sandboxes")));
        foreach (var sub in Directory.EnumerateDirectories(d.NamespacesDir))
            Assert.Empty(Directory.EnumerateFileSystemEntries(sub));
        // The name was released with everything else.
        config.Linux.Sysctls.Remove("net.ipv4.ip_local_port_range");
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
        var net = Directory.EnumerateFiles(Path.Combine(d.NamespacesDir, "netns")).Single();
        Assert.Equal("1024", Nsenter($"--net={net}", "cat", "/proc/sys/net/core/somaxconn").Trim());
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
    }

    [Fact]
    public async Task A_shared_pid_namespace_has_an_infra_process_that_stop_takes_away()
    {
        await using var d = await DaemonProcess.StartAsync();
        var config = Minimal("pidpod");
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
        var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true });
        using var info = JsonDocument.Parse(status.Info["info"]);
        var pid = info.RootElement.GetProperty("infraPid").GetInt32();
        var pin = info.RootElement.GetProperty("pins").GetProperty("pid").GetString()!;
        Assert.EndsWith("\t1", File.ReadAllLines($"/proc/{pid}/status").Single(l => l.StartsWith("NSpid:")));
        // The infra process lives in the pod's network namespace too.
        var net = info.RootElement.GetProperty("pins").GetProperty("net").GetString()!;
        Assert.Equal(new FileInfo($"/proc/{pid}/ns/net").LinkTarget, $"net:[{Inode(net)}]");
        // Whatever a pod process sends to its PID 1, the daemon carries on.
        Signals.Send(pid, Signals.SIGINT);
        await d.Runtime.VersionAsync(new VersionRequest());
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
        Assert.False(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "), "the infra process is still alive");
        Assert.False(File.Exists(pin));
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
    }

    [Fact]
    public async Task The_infra_process_exits_on_SIGTERM()
    {
        await using var d = await DaemonProcess.StartAsync();
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Minimal("term") })).PodSandboxId;
        var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true });
        using var info = JsonDocument.Parse(status.Info["info"]);
        var pid = info.RootElement.GetProperty("infraPid").GetInt32();
        Signals.Send(pid, Signals.SIGTERM);
        for (var i = 0; i < 100 && !IsGoneOrZombie(pid); i++)
            await Task.Delay(20);
        Assert.True(IsGoneOrZombie(pid));
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        Assert.False(Directory.Exists($"/proc/{pid}"), "the infra process was not reaped");
    }

    [Fact]
    public async Task A_pod_whose_infra_process_dies_is_NOTREADY_at_once_and_the_process_is_reaped()
    {
        await using var d = await DaemonProcess.StartAsync();
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Minimal("dies") })).PodSandboxId;
        var other = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Minimal("lives") })).PodSandboxId;
        var pid = RecoveryTests.InfraPid(await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true }));
        Signals.Send(pid, Signals.SIGKILL);
        // No restart, no poll of the daemon's own: the exit watch sees it.
        var watch = Stopwatch.StartNew();
        while ((await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status.State == PodSandboxState.SandboxReady)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), "still READY 2 s after its infra process died");
            await Task.Delay(5);
        }
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"NOTREADY only after {watch.Elapsed}");
        await d.LoggedAsync($"the infra process {pid} of sandbox {id} exited");
        // Reaped by the daemon, not left a zombie until Stop.
        for (var i = 0; i < 100 && Directory.Exists($"/proc/{pid}"); i++)
            await Task.Delay(10);
        Assert.False(Directory.Exists($"/proc/{pid}"), "the dead infra process was not reaped");
        Assert.Equal(PodSandboxState.SandboxReady, (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = other })).Status.State);
        // The state is persisted: a restart agrees.
        await d.StopAsync();
        await d.RestartAsync();
        Assert.Equal(PodSandboxState.SandboxNotready, (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status.State);
        // A pod recovered after a restart is watched too (its infra process is no longer the daemon's child).
        var otherPid = RecoveryTests.InfraPid(await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = other, Verbose = true }));
        Signals.Send(otherPid, Signals.SIGKILL);
        watch.Restart();
        while ((await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = other })).Status.State == PodSandboxState.SandboxReady)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), "a recovered pod stayed READY after its infra process died");
            await Task.Delay(5);
        }
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = other });
        Assert.Empty(Cleanup.NsfsMountsUnder(d.NamespacesDir));
    }

    internal static bool IsGoneOrZombie(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/stat").Split(')')[1].TrimStart().StartsWith('Z'); }
        catch (IOException) { return true; }
    }

    internal static PodSandboxConfig Minimal(string name, NamespaceMode pid = NamespaceMode.Pod) => new()
    {
        Metadata = new PodSandboxMetadata { Name = name, Namespace = "test", Uid = "uid-" + name },
        Labels = { ["test"] = name },
        Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Pid = pid } } },
    };

    private static ListPodSandboxRequest Filter(PodSandboxFilter f) => new() { Filter = f };

    private static PodSandboxFilter Ready(PodSandboxState s) => new() { State = new PodSandboxStateValue { State = s } };

    internal static ulong Inode(string path) =>
        ulong.Parse(Nsenter("--", "stat", "-L", "-c", "%i", path).Trim());

    internal static string Nsenter(params string[] args)
    {
        var info = new System.Diagnostics.ProcessStartInfo(args[0] == "--" ? args[1] : "nsenter") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args[0] == "--" ? args[2..] : args)
            info.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(info)!;
        var output = p.StandardOutput.ReadToEnd();
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{info.FileName} {string.Join(' ', info.ArgumentList)}: {error}");
        return output;
    }
}
