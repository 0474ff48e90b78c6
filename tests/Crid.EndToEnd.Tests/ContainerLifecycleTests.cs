using Crid.Core.Errors;
using Runtime.V1;
using CoreState = Crid.Core.Containers.ContainerState;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// The container lifecycle in process (<see cref="ContainerHost"/>): real pods, conmon, runc and
/// overlay root filesystems, an image store that is a folder of layers. Each test leaves nothing.
/// </summary>
public sealed class ContainerLifecycleTests
{
    [Fact]
    public async Task Create_start_exec_stop_and_remove_leave_nothing()
    {
        await using var host = await ContainerHost.StartAsync();
        var pod = await host.PodAsync("life", NamespaceMode.Container);
        var c = await host.CreateAsync(pod, ContainerHost.Shell("life", "echo started; touch /written; exec sleep 1000"));
        Assert.Equal(CoreState.Created, c.State);
        Assert.True(c.Status.Get().Pid > 0);
        Assert.Single(host.Images.Holds);

        await host.Containers.StartAsync(c.Id, ContainerHost.Timeout());
        Assert.Equal(CoreState.Running, c.State);
        Assert.True(c.Status.Get().StartedAt > c.CreatedAt);
        var exec = await host.Containers.ExecSyncAsync(c.Id[..12], ["/bin/sh", "-c", "echo $$; ls /written; cat /proc/1/cmdline | tr '\\0' ' '"], 10, ContainerHost.Timeout());
        Assert.Equal(0, exec.ExitCode);
        var lines = System.Text.Encoding.UTF8.GetString(exec.Stdout).Split('\n');
        Assert.Equal("/written", lines[1]);
        Assert.Equal("sleep 1000 ", lines[2]);
        // The written file is in the container's own layer, not in the image's.
        Assert.True(File.Exists(Path.Combine(c.Dir, "upper", "written")));
        Assert.False(File.Exists(Path.Combine(host.Dir, "layers", "busybox", "written")));

        // pid 1 ignores SIGTERM it has no handler for: the timeout passes, then SIGKILL.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        await host.Containers.StopAsync(c.Id, 1, ContainerHost.Timeout());
        Assert.InRange(watch.Elapsed.TotalSeconds, 0.9, 10);
        var status = c.Status.Get();
        Assert.Equal(CoreState.Exited, status.State);
        Assert.Equal(137, status.ExitCode);
        Assert.Equal("Error", status.Reason);
        // Idempotent.
        await host.Containers.StopAsync(c.Id, 1, ContainerHost.Timeout());
        Assert.Contains("started", await File.ReadAllTextAsync(c.LogPath));

        await host.Containers.RemoveAsync(c.Id, ContainerHost.Timeout());
        await host.Containers.RemoveAsync(c.Id, ContainerHost.Timeout());
        Assert.Empty(host.Leftovers());
        Assert.Empty(host.Containers.ReservedNames());
        await Assert.ThrowsAsync<NotFoundException>(() => host.Containers.StopAsync(c.Id, 0, ContainerHost.Timeout()));
    }

    [Fact]
    public async Task Exit_codes_and_reasons()
    {
        await using var host = await ContainerHost.StartAsync();
        var pod = await host.PodAsync("codes");
        var zero = await host.RunAsync(pod, ContainerHost.Shell("zero", "exit 0"));
        var one = await host.RunAsync(pod, ContainerHost.Shell("one", "exit 1"));
        var oom = await host.RunAsync(pod, ContainerHost.Shell("oom", "x=a; while true; do x=$x$x; done", c =>
            c.Linux.Resources = new LinuxContainerResources { MemoryLimitInBytes = 16 << 20 }));
        var s0 = await ContainerHost.ExitedAsync(zero);
        Assert.Equal((0, "Completed"), (s0.ExitCode, s0.Reason));
        var s1 = await ContainerHost.ExitedAsync(one);
        Assert.Equal((1, "Error"), (s1.ExitCode, s1.Reason));
        Assert.True(s1.FinishedAt >= s1.StartedAt && s1.StartedAt > 0);
        var so = await ContainerHost.ExitedAsync(oom);
        Assert.Equal((137, "OOMKilled"), (so.ExitCode, so.Reason));
    }

    [Fact]
    public async Task A_restart_finds_running_created_and_exited_containers_and_exits_while_down()
    {
        await using var host = await ContainerHost.StartAsync();
        var pod = await host.PodAsync("restart", NamespaceMode.Container);
        var running = await host.RunAsync(pod, ContainerHost.Shell("running", "exec sleep 1000"));
        var created = await host.CreateAsync(pod, ContainerHost.Shell("created", "exit 3"));
        var exited = await host.RunAsync(pod, ContainerHost.Shell("exited", "exit 4"));
        await ContainerHost.ExitedAsync(exited);
        var dies = await host.RunAsync(pod, ContainerHost.Shell("dies", "read x < /dev/stdin; exit 5", c => c.Stdin = true));
        var pid = dies.Status.Get().Pid;

        // While no daemon watches, one container exits.
        await host.RestartAsync(() =>
        {
            Signals.Send(pid, Signals.SIGKILL);
            var exitFile = Path.Combine(host.RuntimeRoot, "default", "exits", dies.Id);
            for (var i = 0; i < 500 && !File.Exists(exitFile); i++)
                Thread.Sleep(10);
        });

        var byName = host.Containers.List(null).ToDictionary(c => c.Metadata.Name);
        Assert.Equal(4, byName.Count);
        Assert.Equal(CoreState.Running, byName["running"].State);
        Assert.Equal(running.Status.Get().Pid, byName["running"].Status.Get().Pid);
        Assert.Equal(CoreState.Created, byName["created"].State);
        Assert.Equal((CoreState.Exited, 4), (byName["exited"].State, byName["exited"].Status.Get().ExitCode));
        var died = byName["dies"].Status.Get();
        Assert.Equal((CoreState.Exited, 137, "Error"), (died.State, died.ExitCode, died.Reason));
        Assert.Equal(4, host.Containers.ReservedNames().Count);

        // The recovered ones work as before: start, exec, stop.
        await host.Containers.StartAsync(byName["created"].Id, ContainerHost.Timeout());
        Assert.Equal(3, (await ContainerHost.ExitedAsync(byName["created"])).ExitCode);
        Assert.Equal(0, (await host.Containers.ExecSyncAsync(byName["running"].Id, ["true"], 5, ContainerHost.Timeout())).ExitCode);
        await host.Containers.StopAsync(byName["running"].Id, 0, ContainerHost.Timeout());
        Assert.Equal(137, byName["running"].Status.Get().ExitCode);
    }

    [Fact]
    public async Task A_create_cut_short_after_the_runtime_made_it_is_cleaned_at_start()
    {
        await using var host = await ContainerHost.StartAsync();
        var pod = await host.PodAsync("cut", NamespaceMode.Container);
        var c = await host.CreateAsync(pod, ContainerHost.Shell("cut", "exec sleep 1000"));
        // As if the daemon died between the runtime's create and the record's rename.
        await host.RestartAsync(() => File.Delete(Path.Combine(c.Dir, "container.json")));
        Assert.Empty(host.Containers.List(null));
        Assert.Empty(host.Containers.ReservedNames());
        Assert.Empty(host.Leftovers());
        // The name is free again.
        var again = await host.CreateAsync(pod, ContainerHost.Shell("cut", "exec sleep 1000"));
        Assert.NotEqual(c.Id, again.Id);
    }

    [Fact]
    public async Task Stopping_a_pod_stops_its_containers_and_removing_it_removes_them()
    {
        await using var host = await ContainerHost.StartAsync();
        var pod = await host.PodAsync("pod");
        var a = await host.RunAsync(pod, ContainerHost.Shell("a", "exec sleep 1000"));
        var b = await host.RunAsync(pod, ContainerHost.Shell("b", "trap 'exit 0' TERM; sleep 1000 & wait"));
        var created = await host.CreateAsync(pod, ContainerHost.Shell("c", "true"));
        await host.Sandboxes.StopAsync(pod.Id, ContainerHost.Timeout());
        foreach (var c in new[] { a, b, created })
            Assert.Equal(CoreState.Exited, c.State);
        var refused = await Assert.ThrowsAsync<FailedPreconditionException>(() => host.CreateAsync(pod, ContainerHost.Shell("late", "true")));
        Assert.Contains("not ready", refused.Message);
        await host.Sandboxes.RemoveAsync(pod.Id, ContainerHost.Timeout());
        Assert.Empty(host.Containers.List(null));
        Assert.Empty(host.Leftovers());
    }

    public static TheoryData<string, string, Action<ContainerConfig>> Refused() => new()
    {
        { "a device that does not exist", "config.devices[0].host_path", c => c.Devices.Add(new Device { HostPath = "/dev/no-such-device", ContainerPath = "/dev/x", Permissions = "rwm" }) },
        { "a mount over /", "config.mounts[0].container_path", c => c.Mounts.Add(new Mount { HostPath = "/tmp", ContainerPath = "/" }) },
        { "absurd cpu shares", "config.linux.resources.cpu_shares", c => c.Linux.Resources = new LinuxContainerResources { CpuShares = 1_000_000_000 } },
        { "a cpuset the host lacks", "config.linux.resources.cpuset_cpus", c => c.Linux.Resources = new LinuxContainerResources { CpusetCpus = "0-4095" } },
        { "a log path out of the log directory", "config.log_path", c => c.LogPath = "../../escape.log" },
        { "an image that is not present", "image", c => c.Image.Image = "docker.io/library/absent:1" },
        { "a command the image lacks", "runtime", c => c.Command[0] = "/bin/no-such-command" },
        { "a privileged container in an unprivileged pod", "config.linux.security_context.privileged", c => c.Linux.SecurityContext = new LinuxContainerSecurityContext { Privileged = true } },
        { "a seccomp profile that does not exist", "config.linux.security_context.seccomp", c => c.Linux.SecurityContext = new LinuxContainerSecurityContext { Seccomp = new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Localhost, LocalhostRef = "/no/such/profile.json" } } },
        { "no name", "config.metadata.name", c => c.Metadata.Name = "" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task A_refused_create_names_its_field_and_leaves_nothing(string what, string field, Action<ContainerConfig> adjust)
    {
        _ = what;
        await using var host = await ContainerHost.StartAsync();
        var pod = await host.PodAsync("refused", NamespaceMode.Container);
        var e = await Assert.ThrowsAnyAsync<CriException>(() => host.CreateAsync(pod, ContainerHost.Shell("refused", "true", adjust)));
        switch (field)
        {
            case "image":
                Assert.IsType<NotFoundException>(e);
                break;
            case "runtime":
                Assert.IsType<RuntimeFailureException>(e);
                Assert.Contains("no-such-command", e.Message);
                break;
            default:
                Assert.StartsWith(field, Assert.IsType<InvalidArgumentException>(e).Field);
                break;
        }
        Assert.Empty(host.Leftovers());
        Assert.Empty(host.Containers.ReservedNames());
        Assert.Empty(host.Containers.List(null));
        Assert.False(Directory.Exists(Path.Combine(host.LogDir, "refused")) && Directory.EnumerateFileSystemEntries(Path.Combine(host.LogDir, "refused")).Any());
    }

    [Fact]
    public async Task A_create_the_client_gave_up_on_is_kept_for_its_retry()
    {
        await using var host = await ContainerHost.StartAsync();
        var pod = await host.PodAsync("retry", NamespaceMode.Container);
        var request = new global::Runtime.V1.CreateContainerRequest { PodSandboxId = pod.Id, Config = ContainerHost.Shell("retry", "true"), SandboxConfig = pod.Config };
        using var gaveUp = new CancellationTokenSource();
        var first = host.Containers.CreateAsync(request, gaveUp.Token);
        gaveUp.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        var retried = await host.Containers.CreateAsync(request, ContainerHost.Timeout());
        Assert.Single(host.Containers.List(null));
        Assert.Equal(0, host.Containers.PendingCreates);
        // A third call is a duplicate like any other.
        await Assert.ThrowsAsync<AlreadyExistsException>(() => host.Containers.CreateAsync(request, ContainerHost.Timeout()));
        Assert.Equal(retried.Id, Assert.Single(host.Containers.ReservedNames()).Value);
    }

    [Fact]
    public async Task Exec_sync_timeout_update_resources_and_log_reopen()
    {
        await using var host = await ContainerHost.StartAsync();
        var pod = await host.PodAsync("exec", NamespaceMode.Container);
        var c = await host.RunAsync(pod, ContainerHost.Shell("exec", "while true; do echo tick; sleep 0.2; done",
            cfg => cfg.Linux.Resources = new LinuxContainerResources { MemoryLimitInBytes = 64 << 20 }));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var timedOut = await Assert.ThrowsAsync<DeadlineExceededException>(() => host.Containers.ExecSyncAsync(c.Id, ["sleep", "30"], 1, ContainerHost.Timeout()));
        Assert.InRange(watch.Elapsed.TotalSeconds, 0.9, 10);
        Assert.Contains("timed out", timedOut.Message);
        var ps = await host.Containers.ExecSyncAsync(c.Id, ["ps"], 5, ContainerHost.Timeout());
        Assert.DoesNotContain("sleep 30", System.Text.Encoding.UTF8.GetString(ps.Stdout));

        await host.Containers.UpdateResourcesAsync(c.Id, new LinuxContainerResources { MemoryLimitInBytes = 96 << 20, CpuShares = 512 }, ContainerHost.Timeout());
        var cgroup = Cleanup.CgroupsUnder(host.CgroupParent).Single(d => d.StartsWith("/sys/fs/cgroup/memory/", StringComparison.Ordinal) && d.Contains(c.Id));
        Assert.Equal((96 << 20).ToString(), File.ReadAllText(Path.Combine(cgroup, "memory.limit_in_bytes")).Trim());
        Assert.Equal(96 << 20, c.Status.Get().Resources!.MemoryLimitInBytes);
        Assert.Equal(512, c.Status.Get().Resources!.CpuShares);
        var bad = await Assert.ThrowsAsync<InvalidArgumentException>(() => host.Containers.UpdateResourcesAsync(c.Id, new LinuxContainerResources { CpuShares = 1 }, ContainerHost.Timeout()));
        Assert.Equal("linux.cpu_shares", bad.Field);

        // kubelet's rotation: rename, then reopen; the monitor writes a new file at the old path.
        File.Move(c.LogPath, c.LogPath + ".1");
        await host.Containers.ReopenLogAsync(c.Id, ContainerHost.Timeout());
        for (var i = 0; i < 100 && new FileInfo(c.LogPath).Length == 0; i++)
            await Task.Delay(50);
        var line = File.ReadLines(c.LogPath).First();
        // CRI log format: RFC 3339 nano time, stream, tag (F: full line), the line.
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) stdout F tick$", line);

        await host.Containers.StopAsync(c.Id, 0, ContainerHost.Timeout());
        await Assert.ThrowsAsync<FailedPreconditionException>(() => host.Containers.ExecSyncAsync(c.Id, ["true"], 5, ContainerHost.Timeout()));
        await Assert.ThrowsAsync<FailedPreconditionException>(() => host.Containers.ReopenLogAsync(c.Id, ContainerHost.Timeout()));
        await Assert.ThrowsAsync<FailedPreconditionException>(() => host.Containers.StartAsync(c.Id, ContainerHost.Timeout()));
    }

    [Fact]
    public async Task Security_context_fields_hold_inside_the_container()
    {
        await using var host = await ContainerHost.StartAsync();
        var pod = await host.PodAsync("sec", NamespaceMode.Container);
        var c = await host.RunAsync(pod, ContainerHost.Shell("sec", "exec sleep 1000", cfg => cfg.Linux.SecurityContext = new LinuxContainerSecurityContext
        {
            RunAsUser = new Int64Value { Value = 1234 },
            RunAsGroup = new Int64Value { Value = 2345 },
            SupplementalGroups = { 3456 },
            ReadonlyRootfs = true,
            NoNewPrivs = true,
            Capabilities = new Capability { DropCapabilities = { "ALL" }, AddCapabilities = { "NET_BIND_SERVICE" } },
            MaskedPaths = { "/proc/timer_list" },
            ReadonlyPaths = { "/proc/sys" },
        }));
        async Task<(int Code, string Out)> Exec(string script)
        {
            var r = await host.Containers.ExecSyncAsync(c.Id, ["/bin/sh", "-c", script], 10, ContainerHost.Timeout());
            return (r.ExitCode, System.Text.Encoding.UTF8.GetString(r.Stdout).Trim());
        }
        Assert.Equal((0, "1234 2345"), await Exec("echo $(id -u) $(id -g)"));
        Assert.Contains("3456", (await Exec("id -G")).Out.Split(' '));
        Assert.NotEqual(0, (await Exec("touch /new-file")).Code);
        Assert.Equal((0, "NoNewPrivs:\t1"), await Exec("grep NoNewPrivs /proc/self/status"));
        // NET_BIND_SERVICE alone: bit 10; a non-root process keeps it in its bounding set only.
        Assert.Equal((0, "CapBnd:\t0000000000000400"), await Exec("grep CapBnd /proc/self/status"));
        // A masked file reads as /dev/null (root-only on the host, empty and readable here).
        Assert.Equal((0, "0"), await Exec("wc -c < /proc/timer_list"));
        Assert.Contains(" ro,", (await Exec("grep ' /proc/sys ' /proc/self/mounts")).Out);
        await host.Containers.StopAsync(c.Id, 0, ContainerHost.Timeout());
        await host.Containers.RemoveAsync(c.Id, ContainerHost.Timeout());
    }
}
