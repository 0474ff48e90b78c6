using System.Diagnostics;
using Crid.Core.Sandboxes;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>Pods survive a daemon restart, whether it was asked to stop or killed.</summary>
public sealed class RecoveryTests
{
    private static async Task<List<string>> RunSeveralAsync(DaemonProcess d)
    {
        var ids = new List<string>();
        foreach (var file in new[] { "pod_default.json", "pod_userns.json", "pod_hostns.json" })
        {
            var config = SandboxConfigFile.Load(Path.Combine(RepoPaths.Vectors, "configs", file));
            ids.Add((await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId);
        }
        ids.Add((await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("shared-pid") })).PodSandboxId);
        // A user-namespaced pod sharing its pid namespace: its infra runs as the pod's root.
        var usernsPid = SandboxTests.Minimal("userns-shared-pid");
        var mapping = new IDMapping { ContainerId = 0, HostId = 200000, Length = 65536 };
        usernsPid.Linux.SecurityContext.NamespaceOptions.UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { mapping }, Gids = { mapping } };
        ids.Add((await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = usernsPid })).PodSandboxId);
        // One stopped pod: NOTREADY must come back as NOTREADY.
        var stopped = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("stopped") })).PodSandboxId;
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = stopped });
        ids.Add(stopped);
        return ids;
    }

    /// <summary>What `crictl pods -o json` and `crictl inspectp` show, sorted for comparison.</summary>
    private static async Task<(List<PodSandbox> Pods, List<PodSandboxStatusResponse> Statuses)> SnapshotAsync(DaemonProcess d)
    {
        var pods = (await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items.OrderBy(p => p.Id).ToList();
        var statuses = new List<PodSandboxStatusResponse>();
        foreach (var p in pods)
            statuses.Add(await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = p.Id, Verbose = true }));
        return (pods, statuses);
    }

    [Theory]
    [InlineData("SIGTERM")]
    [InlineData("SIGKILL")]
    public async Task Pods_are_identical_after_a_restart(string how)
    {
        await using var d = await DaemonProcess.StartAsync();
        var ids = await RunSeveralAsync(d);
        var before = await SnapshotAsync(d);
        var mountsBefore = Cleanup.NsfsMountsUnder(d.NamespacesDir).Order().ToList();
        var infraPid = InfraPid(before.Statuses.Single(s => s.Status.Metadata.Name == "shared-pid"));
        var usernsInfraPid = InfraPid(before.Statuses.Single(s => s.Status.Metadata.Name == "userns-shared-pid"));

        if (how == "SIGTERM")
            Assert.Equal(0, await d.StopAsync());
        else
            await d.KillAsync();
        // The daemon is gone; the pods are not.
        Assert.Equal(mountsBefore, Cleanup.NsfsMountsUnder(d.NamespacesDir).Order().ToList());
        Assert.True(Directory.Exists($"/proc/{infraPid}"));
        Assert.True(Directory.Exists($"/proc/{usernsInfraPid}"));

        await d.RestartAsync();
        var after = await SnapshotAsync(d);
        Assert.Equal(before.Pods, after.Pods);
        Assert.Equal(before.Statuses, after.Statuses);
        Assert.Equal(mountsBefore, Cleanup.NsfsMountsUnder(d.NamespacesDir).Order().ToList());
        Assert.Equal(5, after.Pods.Count(p => p.State == PodSandboxState.SandboxReady));
        Assert.Equal(6, after.Pods.Count);

        // Names are reserved again.
        var dup = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("shared-pid") }).ResponseAsync);
        Assert.Equal(StatusCode.AlreadyExists, dup.StatusCode);

        // The infra process, no longer the new daemon's child, is still stopped and gone.
        foreach (var id in ids)
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        foreach (var pid in new[] { infraPid, usernsInfraPid })
        {
            for (var i = 0; i < 100 && Directory.Exists($"/proc/{pid}"); i++)
                await Task.Delay(10);
            Assert.False(Directory.Exists($"/proc/{pid}") && !SandboxTests.IsGoneOrZombie(pid));
        }
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "sandboxes")));
    }

    [Fact]
    public async Task A_Run_killed_after_its_pins_and_files_but_before_its_record_leaves_nothing_after_a_restart()
    {
        // Run writes the folder, its /dev/shm and its files while the namespaces are pinned, and the
        // record (with the first status in it) last: a kill just before the record must leave what
        // recovery removes, and nothing else.
        await using var d = await DaemonProcess.StartAsync();
        var keep = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("keep") })).PodSandboxId;
        var mountsBefore = Cleanup.MountsUnder(d.Dir).Order().ToList();
        var pinsBefore = Leaks.PinFiles(d.NamespacesDir);
        await d.StopAsync();
        d.Environment[Crid.Core.Configuration.TestCrash.EnvironmentVariable] = Crid.Core.Configuration.TestCrash.RunBeforeRecord;
        await d.RestartAsync();
        var config = SandboxConfigFile.Load(Path.Combine(RepoPaths.Vectors, "configs", "pod_default.json"));
        await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }).ResponseAsync);
        var deadline = Stopwatch.StartNew();
        while (!d.Process.HasExited)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), "the daemon did not crash at the injected point");
            await Task.Delay(10);
        }

        // What the kill left: pins, the uuid entry, the folder with its files and /dev/shm, no record.
        var folder = Directory.EnumerateDirectories(Path.Combine(d.StateDir, "sandboxes")).Single(f => Path.GetFileName(f) != keep);
        foreach (var file in new[] { "resolv.conf", "hostname", "config.json" })
            Assert.True(File.Exists(Path.Combine(folder, file)), file);
        Assert.False(File.Exists(Path.Combine(folder, SandboxRecord.FileName)));
        Assert.False(File.Exists(Path.Combine(folder, SandboxRecord.StatusFileName)));
        Assert.Contains(Path.Combine(folder, "shm"), Cleanup.MountsUnder(d.Dir));
        Assert.True(Leaks.PinFiles(d.NamespacesDir).Count > pinsBefore.Count);
        Assert.Equal(2, Directory.EnumerateFiles(Path.Combine(d.StateDir, "pins")).Count());

        d.Environment.Clear();
        await d.RestartAsync();
        Assert.False(Directory.Exists(folder));
        Assert.Equal(mountsBefore, Cleanup.MountsUnder(d.Dir).Order().ToList());
        Assert.Equal(pinsBefore, Leaks.PinFiles(d.NamespacesDir));
        Assert.Single(Directory.EnumerateFiles(Path.Combine(d.StateDir, "pins")));
        Assert.Equal(keep, Assert.Single((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items).Id);
        Assert.Equal(PodSandboxState.SandboxReady, (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = keep })).Status.State);

        // The name is free again, and the pod runs.
        var again = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
        Assert.Equal(PodSandboxState.SandboxReady, (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = again })).Status.State);
        foreach (var id in new[] { again, keep })
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        Assert.Empty(Cleanup.MountsUnder(d.Dir));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(d.StateDir, "pins")));
    }

    [Fact]
    public async Task A_pod_whose_pins_vanished_while_the_daemon_was_down_comes_back_NOTREADY_and_clean()
    {
        await using var d = await DaemonProcess.StartAsync();
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("vanish", NamespaceMode.Container) })).PodSandboxId;
        await d.StopAsync();
        var net = Directory.EnumerateFiles(Path.Combine(d.NamespacesDir, "netns")).Single();
        Run("umount", net);

        await d.RestartAsync();
        var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id });
        Assert.Equal(PodSandboxState.SandboxNotready, status.Status.State);
        // Its other pins were taken away too: no NOTREADY pod holds a namespace.
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
    }

    [Fact]
    public async Task A_pod_whose_infra_process_died_while_the_daemon_was_down_comes_back_NOTREADY()
    {
        await using var d = await DaemonProcess.StartAsync();
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("infra-died") })).PodSandboxId;
        var pid = InfraPid(await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true }));
        await d.KillAsync();
        Signals.Send(pid, Signals.SIGKILL);
        for (var i = 0; i < 200 && !SandboxTests.IsGoneOrZombie(pid); i++)
            await Task.Delay(10);

        await d.RestartAsync();
        Assert.Equal(PodSandboxState.SandboxNotready, (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status.State);
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
    }

    [Fact]
    public async Task Pins_crid_recorded_and_folders_without_a_record_are_removed_at_start_but_pins_of_others_are_kept()
    {
        await using var d = await DaemonProcess.StartAsync();
        var keep = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("keep") })).PodSandboxId;
        await d.KillAsync();

        // A pin a crashed Run left behind (its uuid recorded before it was pinned), one of another
        // runtime with a uuid name just like ours (cri-o's pinns), and one `ip netns add` would make.
        var orphanUuid = Guid.NewGuid().ToString();
        var orphan = Path.Combine(d.NamespacesDir, "netns", orphanUuid);
        File.WriteAllText(Path.Combine(d.StateDir, "pins", orphanUuid), new string('c', 64));
        var othersUuid = Path.Combine(d.NamespacesDir, "netns", Guid.NewGuid().ToString());
        var foreign = Path.Combine(d.NamespacesDir, "netns", "someone-elses");
        foreach (var pin in new[] { orphan, othersUuid, foreign })
        {
            File.WriteAllText(pin, "");
            Run("mount", "--bind", "/proc/self/ns/net", pin);
        }
        var halfMade = Directory.CreateDirectory(Path.Combine(d.StateDir, "sandboxes", new string('b', 64))).FullName;
        File.WriteAllText(Path.Combine(halfMade, "config.json"), "{}");
        try
        {
            await d.RestartAsync();
            Assert.False(File.Exists(orphan));
            Assert.False(File.Exists(Path.Combine(d.StateDir, "pins", orphanUuid)));
            Assert.False(Directory.Exists(halfMade));
            Assert.Contains(foreign, Cleanup.NsfsMountsUnder(d.NamespacesDir));
            Assert.Contains(othersUuid, Cleanup.NsfsMountsUnder(d.NamespacesDir));
            Assert.Contains("crid made it for a sandbox that no longer exists", d.Stderr);
            Assert.Contains("left 1 uuid-named pin(s)", d.Stderr);
            Assert.Equal(PodSandboxState.SandboxReady, (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = keep })).Status.State);
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = keep });
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(d.StateDir, "pins")));

            // Stop, crash, start: still untouched.
            await d.KillAsync();
            await d.RestartAsync();
            Assert.Contains(othersUuid, Cleanup.NsfsMountsUnder(d.NamespacesDir));
            await d.StopAsync();
            Assert.Contains(othersUuid, Cleanup.NsfsMountsUnder(d.NamespacesDir));
        }
        finally
        {
            foreach (var pin in new[] { foreign, othersUuid })
            {
                Run("umount", pin);
                File.Delete(pin);
            }
        }
    }

    [Fact]
    public async Task A_second_daemon_on_the_same_namespaces_dir_is_refused_and_the_first_ones_pods_are_untouched()
    {
        await using var first = await DaemonProcess.StartAsync();
        var id = (await first.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("first", NamespaceMode.Pod) })).PodSandboxId;
        var infra = InfraPid(await first.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true }));
        var pins = Cleanup.NsfsMountsUnder(first.NamespacesDir);
        Assert.NotEmpty(pins);

        // Its own socket and state dir, the first one's namespaces dir.
        var other = Directory.CreateTempSubdirectory("crid-e2e-second-").FullName;
        try
        {
            var config = Path.Combine(other, "empty.yaml");
            File.WriteAllText(config, "");
            var socketDir = Path.Combine(other, "run");
            var stateDir = Path.Combine(other, "state");
            var said = new System.Text.StringBuilder();
            using var second = DaemonProcess.Launch(["--listen", Path.Combine(socketDir, "crid.sock"), "--state-dir", stateDir,
                "--namespaces-dir", first.NamespacesDir, "--config", config, "--cni-conf-dir", Path.Combine(other, "net.d"),
                "--runtime-root", DaemonProcess.ShortRuntimeRoot()], said);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            await second.WaitForExitAsync(cts.Token);
            Assert.Equal(1, second.ExitCode);
            await Task.Delay(100);
            lock (said)
                Assert.Contains($"another crid daemon is using the namespaces dir {first.NamespacesDir}", said.ToString());
            // A refused start leaves nothing: not even the folders it would have made.
            Assert.False(Directory.Exists(stateDir));
            Assert.False(Directory.Exists(socketDir));

            Assert.Equal(pins, Cleanup.NsfsMountsUnder(first.NamespacesDir));
            Assert.True(Directory.Exists($"/proc/{infra}"));
            Assert.Equal(PodSandboxState.SandboxReady, (await first.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status.State);
            await first.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        }
        finally
        {
            Directory.Delete(other, recursive: true);
        }
    }

    internal static int InfraPid(PodSandboxStatusResponse status)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(status.Info["info"]);
        return doc.RootElement.GetProperty("infraPid").GetInt32();
    }

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)}: {err}");
    }
}
