using System.Diagnostics;
using System.Text.RegularExpressions;
using Crid.Core.Configuration;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// The real daemon SIGKILLed inside CreateContainer, with the real conmon and runc: while conmon
/// waits on its start pipe, after runc made the container and before its record, and while conmon
/// is still inside <c>runc create</c> when the restarted daemon recovers. After the restart there
/// is no such container anywhere (list, processes, runc state, cgroup, mount, folders), the
/// container that ran before the crash still runs and is listed, and the pod stops and goes.
/// </summary>
public sealed class ContainerCrashTests
{
    [Theory]
    [InlineData(TestCrash.CreateBeforeStartByte)]
    [InlineData(TestCrash.CreateBeforeRecord)]
    public async Task A_daemon_killed_inside_CreateContainer_leaves_no_container_after_a_restart(string point)
    {
        var (registry, d, _) = await ContainerSocketTests.StartAsync();
        await using var _r = registry;
        await using var _d = d;
        var (pod, podConfig, keep, keepPid) = await KeepRunningAsync(d);

        // Containers outlive a SIGTERM: the daemon comes back with the crash point armed.
        Assert.Equal(0, await d.StopAsync());
        d.Environment[TestCrash.EnvironmentVariable] = point;
        await d.RestartAsync();
        await Assert.ThrowsAsync<RpcException>(() => d.Runtime.CreateContainerAsync(Doomed(pod, podConfig)).ResponseAsync);
        await CrashedAsync(d);
        var id = Directory.EnumerateDirectories(Path.Combine(d.StateDir, "containers")).Select(Path.GetFileName).Single(n => n != keep)!;

        if (point == TestCrash.CreateBeforeStartByte)
        {
            // conmon was waiting for the start byte: it must run nothing now that nobody will
            // ever record what it makes, even while no daemon runs at all.
            await NoProcessNamingAsync(id, TimeSpan.FromSeconds(20));
            var made = Traces(d, id, live: true);
            Assert.True(made.Count == 0, "made after the crash: " + string.Join("; ", made));
        }
        else
        {
            Assert.Contains(Traces(d, id, live: true), t => t.StartsWith("runc state", StringComparison.Ordinal));
        }

        d.Environment.Clear();
        await d.RestartAsync();
        await AssertOnlyKeepAsync(d, id, keep, keepPid);
        await ReuseAndRemoveAsync(d, pod, podConfig);
    }

    /// <summary>
    /// A runtime wrapper that sleeps before it execs runc for `create` holds conmon inside runc
    /// create across the kill and the whole restart: the recovery must end that conmon and what it
    /// started, or it makes its container after the recovery, with no record.
    /// </summary>
    [Fact]
    public async Task A_monitor_still_inside_runc_create_when_the_daemon_recovers_is_killed_with_what_it_started()
    {
        var dir = Directory.CreateTempSubdirectory("crid-e2e-runc-").FullName;
        try
        {
            var wrapper = Path.Combine(dir, "runc");
            var slow = Path.Combine(dir, "slow");
            var creating = Path.Combine(dir, "creating");
            File.WriteAllText(wrapper,
                "#!/bin/sh\n" +
                "for a in \"$@\"; do\n" +
                $"  if [ \"$a\" = create ] && [ -e {slow} ]; then echo $$ > {creating}; sleep 60; break; fi\n" +
                "done\n" +
                "exec /usr/sbin/runc \"$@\"\n");
            File.SetUnixFileMode(wrapper, (UnixFileMode)0x1ed);
            var (registry, d, _) = await ContainerSocketTests.StartAsync("--runtime-path", wrapper);
            await using var _r = registry;
            await using var _d = d;
            var (pod, podConfig, keep, keepPid) = await KeepRunningAsync(d);

            File.WriteAllText(slow, "");
            var create = d.Runtime.CreateContainerAsync(Doomed(pod, podConfig)).ResponseAsync;
            var deadline = Stopwatch.StartNew();
            while (!File.Exists(creating) || File.ReadAllText(creating).Trim().Length == 0)
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "runc create never started");
                await Task.Delay(10);
            }
            var wrapperPid = int.Parse(File.ReadAllText(creating).Trim());
            await d.KillAsync();
            await Assert.ThrowsAsync<RpcException>(() => create);
            var id = Directory.EnumerateDirectories(Path.Combine(d.StateDir, "containers")).Select(Path.GetFileName).Single(n => n != keep)!;
            Assert.True(Directory.Exists($"/proc/{wrapperPid}"), "runc create ended with the daemon: the test did not hold it");

            await d.RestartAsync("--runtime-path", wrapper);
            Assert.True(SandboxTests.IsGoneOrZombie(wrapperPid), "the cut-short runc create still runs after the recovery");
            await d.LoggedAsync("processes left by creates a crash cut short");
            // Killed as what it is, not after waiting for it to end as the monitor of a deleted container.
            Assert.DoesNotContain("did not exit after the container was deleted", d.Stderr);
            File.Delete(slow);
            await AssertOnlyKeepAsync(d, id, keep, keepPid);
            await ReuseAndRemoveAsync(d, pod, podConfig);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// The user's promise, on the real daemon SIGKILLed with live containers: the restarted daemon
    /// shows every container as it is — a running one with the pid it had (the same process), one
    /// that exited while no daemon ran with its exit code, a created one created — without asking
    /// runc about any of them (a live state is read from runc's state.json and /proc, an exit from
    /// the file conmon wrote; an exec of runc each kept 1,000 containers' socket down for a minute);
    /// and a later exit of a container that ran through the crash is caught by its conmon and
    /// recorded by the new daemon.
    /// </summary>
    [Fact]
    public async Task A_daemon_killed_over_live_containers_finds_each_as_it_is_without_asking_runc()
    {
        var dir = Directory.CreateTempSubdirectory("crid-e2e-runc-").FullName;
        try
        {
            var calls = Path.Combine(dir, "calls");
            var wrapper = Path.Combine(dir, "runc");
            File.WriteAllText(wrapper, $"#!/bin/sh\necho \"$*\" >> {calls}\nexec /usr/sbin/runc \"$@\"\n");
            File.SetUnixFileMode(wrapper, (UnixFileMode)0x1ed);
            var (registry, d, _) = await ContainerSocketTests.StartAsync("--runtime-path", wrapper);
            await using var _r = registry;
            await using var _d = d;
            var podConfig = ContainerSocketTests.Pod(d, "live", NamespaceMode.Container);
            var pod = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = podConfig })).PodSandboxId;
            var keep = new List<(string Id, int Pid)>();
            for (var i = 0; i < 3; i++)
            {
                var id = await ContainerSocketTests.RunAsync(d, pod, podConfig, ContainerSocketTests.Shell($"keep-{i}", "exec sleep 1000"));
                keep.Add((id, PidOf(await ContainerSocketTests.StatusAsync(d, id, verbose: true))));
            }
            // pid 1 of its namespace: SIGTERM reaches it only through its trap.
            var exits = await ContainerSocketTests.RunAsync(d, pod, podConfig, ContainerSocketTests.Shell("exits", "trap 'exit 7' TERM; while true; do sleep 0.1; done"));
            var exitsPid = PidOf(await ContainerSocketTests.StatusAsync(d, exits, verbose: true));
            var created = (await d.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod, Config = ContainerSocketTests.Shell("created", "exit 3"), SandboxConfig = podConfig })).ContainerId;

            await d.KillAsync();
            Signals.Send(exitsPid, Signals.SIGTERM);
            var exitFile = Path.Combine(d.RuntimeRoot, "default", "exits", exits);
            var deadline = Stopwatch.StartNew();
            while (!File.Exists(exitFile))
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(20), "conmon wrote no exit file while the daemon was down");
                await Task.Delay(20);
            }
            File.Delete(calls);
            await d.RestartAsync("--runtime-path", wrapper);

            foreach (var (id, pid) in keep)
            {
                var status = await ContainerSocketTests.StatusAsync(d, id, verbose: true);
                Assert.Equal((ContainerState.ContainerRunning, pid), (status.Status.State, PidOf(status)));
                Assert.False(SandboxTests.IsGoneOrZombie(pid), $"container {id}'s process {pid} died with the daemon");
            }
            var exited = (await ContainerSocketTests.StatusAsync(d, exits)).Status;
            Assert.Equal((ContainerState.ContainerExited, 7, "Error"), (exited.State, exited.ExitCode, exited.Reason));
            Assert.Equal(ContainerState.ContainerCreated, (await ContainerSocketTests.StatusAsync(d, created)).Status.State);
            var listed = (await d.Runtime.ListContainersAsync(new ListContainersRequest())).Containers.ToDictionary(c => c.Id, c => c.State);
            Assert.Equal(5, listed.Count);
            Assert.Equal(3, listed.Values.Count(s => s == ContainerState.ContainerRunning));
            var ids = keep.Select(k => k.Id).Append(exits).Append(created).ToList();
            var asked = File.Exists(calls) ? File.ReadAllLines(calls) : [];
            Assert.True(!asked.Any(c => ids.Any(id => c.Contains(id, StringComparison.Ordinal))), "runc was asked at recovery: " + string.Join("; ", asked));

            // An exit after the restart of a container that ran through the crash.
            Signals.Send(keep[0].Pid, Signals.SIGKILL);
            deadline.Restart();
            ContainerStatus after;
            while ((after = (await ContainerSocketTests.StatusAsync(d, keep[0].Id)).Status).State != ContainerState.ContainerExited)
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(20), "the exit of a container recovered running was not recorded");
                await Task.Delay(20);
            }
            Assert.Equal(137, after.ExitCode);

            await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
            Assert.Empty(ContainerSocketTests.Leftovers(d));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static CreateContainerRequest Doomed(string pod, PodSandboxConfig podConfig) =>
        new() { PodSandboxId = pod, Config = ContainerSocketTests.Shell("doomed", "exec sleep 1000"), SandboxConfig = podConfig };

    /// <summary>A pod with a container that runs through the crash: its id and its pid.</summary>
    private static async Task<(string Pod, PodSandboxConfig Config, string Keep, int KeepPid)> KeepRunningAsync(DaemonProcess d)
    {
        var podConfig = ContainerSocketTests.Pod(d, "crash", NamespaceMode.Container);
        var pod = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = podConfig })).PodSandboxId;
        var keep = await ContainerSocketTests.RunAsync(d, pod, podConfig, ContainerSocketTests.Shell("keep", "exec sleep 1000"));
        return (pod, podConfig, keep, PidOf(await ContainerSocketTests.StatusAsync(d, keep, verbose: true)));
    }

    private static int PidOf(ContainerStatusResponse status) =>
        int.Parse(Regex.Match(status.Info["info"], "\"pid\":\\s*(\\d+)").Groups[1].Value);

    private static async Task CrashedAsync(DaemonProcess d)
    {
        var deadline = Stopwatch.StartNew();
        while (!d.Process.HasExited)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(20), "the daemon did not crash at the injected point");
            await Task.Delay(10);
        }
    }

    private static async Task NoProcessNamingAsync(string id, TimeSpan within)
    {
        var deadline = Stopwatch.StartNew();
        while (Cleanup.ProcessesNaming(id).Count > 0 && deadline.Elapsed < within)
            await Task.Delay(20);
    }

    /// <summary>The restarted daemon knows only the container that ran before; nothing of the other is left.</summary>
    private static async Task AssertOnlyKeepAsync(DaemonProcess d, string id, string keep, int keepPid)
    {
        var traces = Traces(d, id);
        Assert.True(traces.Count == 0, "left of the cut-short create: " + string.Join("; ", traces));
        var listed = (await d.Runtime.ListContainersAsync(new ListContainersRequest())).Containers;
        Assert.Equal(keep, Assert.Single(listed).Id);
        Assert.Equal(ContainerState.ContainerRunning, (await ContainerSocketTests.StatusAsync(d, keep)).Status.State);
        Assert.True(Directory.Exists($"/proc/{keepPid}") && !SandboxTests.IsGoneOrZombie(keepPid), "the container that ran before the crash died");

        // Nothing shows up later either (a monitor that survived would still be making it).
        await Task.Delay(500);
        traces = Traces(d, id);
        Assert.True(traces.Count == 0, "appeared after the recovery: " + string.Join("; ", traces));
    }

    /// <summary>The name is free again; the pod stops and goes with everything in it.</summary>
    private static async Task ReuseAndRemoveAsync(DaemonProcess d, string pod, PodSandboxConfig podConfig)
    {
        var again = (await d.Runtime.CreateContainerAsync(Doomed(pod, podConfig))).ContainerId;
        Assert.Equal(ContainerState.ContainerCreated, (await ContainerSocketTests.StatusAsync(d, again)).Status.State);
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        Assert.Empty(ContainerSocketTests.Leftovers(d));
    }

    /// <summary>
    /// Everything of container <paramref name="id"/> on the host: processes, runc state, cgroups,
    /// mounts, folders; with <paramref name="live"/> only what the runtime made (processes, runc
    /// state, cgroups), not the daemon's own folders and rootfs mount that a restart removes.
    /// </summary>
    private static List<string> Traces(DaemonProcess d, string id, bool live = false)
    {
        var found = new List<string>();
        // conmon (-c, -u), runc and a wrapper name the id; the container's init is found in its cgroup.
        found.AddRange(Cleanup.ProcessesNaming(id).Where(p => p != d.Process.Id).Select(p => $"process {p}: {Cmdline(p)}"));
        foreach (var hierarchy in Directory.EnumerateDirectories("/sys/fs/cgroup"))
        {
            var cg = hierarchy + d.CgroupParent + "/crid-" + id;
            if (!Directory.Exists(cg))
                continue;
            found.Add("cgroup " + cg);
            var procs = Path.Combine(cg, "cgroup.procs");
            if (File.Exists(procs))
                found.AddRange(File.ReadAllLines(procs).Where(l => l.Length > 0).Select(p => $"process {p} in {cg}: {Cmdline(int.Parse(p))}"));
        }
        foreach (var handler in Directory.Exists(d.RuntimeRoot) ? Directory.EnumerateDirectories(d.RuntimeRoot) : [])
        {
            string[] paths = live ? [Path.Combine(handler, "runc", id)]
                : [Path.Combine(handler, "runc", id), Path.Combine(handler, "containers", id), Path.Combine(handler, "exits", id), Path.Combine(handler, "attach", id)];
            foreach (var path in paths)
            {
                if (Path.Exists(path) || new FileInfo(path).LinkTarget is not null)
                    found.Add((path.Contains("/runc/", StringComparison.Ordinal) ? "runc state " : "runtime file ") + path);
            }
        }
        if (live)
            return found;
        found.AddRange(Cleanup.MountsUnder(d.Dir).Where(m => m.Contains(id, StringComparison.Ordinal)).Select(m => "mount " + m));
        var folder = Path.Combine(d.StateDir, "containers", id);
        if (Directory.Exists(folder))
            found.Add("container folder " + folder);
        return found;
    }

    private static string Cmdline(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim(); }
        catch (IOException) { return "(gone)"; }
    }
}
