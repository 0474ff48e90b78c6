using System.Collections.Concurrent;
using Crid.Core.Sandboxes;
using Grpc.Core;
using Runtime.V1;
using Xunit.Abstractions;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// SIGKILL at random instants during a storm of Run/Stop/Remove: whatever a client was told happened
/// did happen, nothing is half-made, and removing everything afterwards leaves the machine clean.
/// </summary>
public sealed class CrashTests(ITestOutputHelper output)
{
    private const int Clients = 4;
    private const int Kills = 12;

    [Fact]
    public async Task Killed_at_random_instants_during_a_storm_nothing_is_lost_or_leaked()
    {
        var seed = Environment.TickCount;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        await using var d = await DaemonProcess.StartAsync();
        var created = new ConcurrentDictionary<string, bool>();
        var removed = new ConcurrentDictionary<string, bool>();
        // A Remove cut short by the kill may or may not have happened.
        var removeTried = new ConcurrentDictionary<string, bool>();
        var unexpected = new ConcurrentQueue<string>();
        var namespaces = new HashSet<string>(StringComparer.Ordinal);
        var storm = new Storm();
        var timedOut = 0;

        var clients = Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
        {
            var mine = new List<string>();
            var rng = new Random(seed + c + 1);
            for (var n = 0; !storm.Done; n++)
            {
                await storm.EnterAsync();
                try
                {
                    var runtime = d.Runtime;
                    // A deadline: a call must never hang, whatever the kill left behind.
                    var deadline = DateTime.UtcNow.AddSeconds(2);
                    if (mine.Count == 0 || rng.Next(3) == 0)
                    {
                        // One in three shares a pid namespace, so an infra process is part of the storm.
                        var config = SandboxTests.Minimal($"storm-{c}-{n}", rng.Next(3) == 0 ? NamespaceMode.Pod : NamespaceMode.Container);
                        var id = (await runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }, deadline: deadline)).PodSandboxId;
                        created[id] = true;
                        mine.Add(id);
                    }
                    else
                    {
                        var id = mine[rng.Next(mine.Count)];
                        if (rng.Next(2) == 0)
                        {
                            await runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id }, deadline: deadline);
                        }
                        else
                        {
                            removeTried[id] = true;
                            await runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id }, deadline: deadline);
                            removed[id] = true;
                            mine.Remove(id);
                        }
                    }
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Cancelled or StatusCode.DeadlineExceeded)
                {
                    // The daemon died under the call: its outcome is unknown, and that is allowed. A call
                    // that reached a helper child of the dead daemon (it still holds the listening
                    // socket until the next start kills it) runs into its deadline.
                    if (e.StatusCode == StatusCode.DeadlineExceeded)
                        Interlocked.Increment(ref timedOut);
                }
                catch (ObjectDisposedException)
                {
                    // The channel was replaced by a restart.
                }
                catch (RpcException e)
                {
                    unexpected.Enqueue($"{e.StatusCode}: {e.Status.Detail}");
                }
                finally
                {
                    storm.Leave();
                }
            }
        })).ToArray();

        try
        {
            for (var k = 0; k < Kills; k++)
            {
                await Task.Delay(random.Next(20, 400));
                await d.KillAsync();
                await storm.PauseAsync();
                lock (namespaces)
                    namespaces.UnionWith(Leaks.NsfsRoots(d.Dir));
                AssertRecordsWhole(d);
                await d.RestartAsync();
                await Leaks.AssertConsistentAsync(d);
                storm.Resume();
            }
        }
        finally
        {
            storm.Stop();
            await Task.WhenAll(clients);
        }

        Assert.True(unexpected.IsEmpty, string.Join("\n", unexpected));
        Assert.True(created.Count >= Kills, $"only {created.Count} sandboxes were created: the storm did not storm");
        var listed = await Leaks.AssertConsistentAsync(d);
        foreach (var id in created.Keys.Where(id => !removeTried.ContainsKey(id)))
            Assert.Contains(id, listed);
        output.WriteLine($"{created.Count} created, {removed.Count} removed by clients, {listed.Count} left after {Kills} kills; {timedOut} calls ran into their deadline");

        namespaces.UnionWith(Leaks.NsfsRoots(d.Dir));
        // The leak check below can see what this test's daemons started: each ready pod that shares
        // a pid namespace has its infra process, which it finds there now.
        var infras = 0;
        foreach (var id in listed)
        {
            var status = (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status;
            if (status.State == PodSandboxState.SandboxReady && status.Linux.Namespaces.Options.Pid == NamespaceMode.Pod)
                infras++;
        }
        Assert.Equal(infras, OursIn(namespaces, d).Count);
        foreach (var id in listed)
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
        Assert.Empty(Leaks.PinFiles(d.NamespacesDir));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "sandboxes")));
        Assert.Empty(await Leaks.ReservedNamesAsync(d));
        // No infra process (nor anything else) still lives in a namespace one of these pods had.
        // nsfs inode numbers are reused as soon as a namespace is freed, so a process that anything
        // else on the machine started later (another test's pod or container, while its daemon is
        // restarted or killed, so that its parent is init) may sit in a namespace with one of these
        // numbers: what this test's daemons leaked is what they started, which inherited their
        // working folder.
        var leaked = OursIn(namespaces, d);
        Assert.True(leaked.Count == 0, "leaked: " + string.Join("; ", leaked));
        Assert.DoesNotContain("failed unexpectedly", d.Stderr);
    }

    private static List<string> OursIn(IReadOnlySet<string> namespaces, DaemonProcess d) =>
        Leaks.ProcessesIn(namespaces, onlyExe: RepoPaths.Daemon).Where(e => Leaks.StartedBy(int.Parse(e.Split(' ')[0]), d)).ToList();

    [Fact]
    public async Task A_leftover_single_threaded_holder_of_the_state_lock_is_killed_but_a_live_daemon_is_not()
    {
        await using var d = await DaemonProcess.StartAsync();
        await d.StopAsync();
        // What a helper child of a killed daemon looks like from outside: one thread, the lock held,
        // a parent that does not hold it. flock(1) with --close keeps the lock in flock itself only.
        var sleeper = 0;
        var holder = System.Diagnostics.Process.Start("flock", ["--close", Path.Combine(d.StateDir, "crid.lock"), "sleep", "600"])!;
        try
        {
            for (var i = 0; i < 200 && !File.ReadAllText("/proc/locks").Contains($" {holder.Id} "); i++)
                await Task.Delay(10);
            for (var i = 0; i < 200 && sleeper == 0; i++)
            {
                sleeper = Leaks.ChildrenOf(holder.Id).Select(c => int.Parse(c.Split(' ')[0])).FirstOrDefault();
                await Task.Delay(10);
            }
            await d.RestartAsync();
            Assert.True(holder.WaitForExit(5000), "the stale holder of the lock was not killed");

            // A second daemon on the same state dir must fail, and must not kill the live one.
            using var second = DaemonProcess.Launch([.. d.DefaultArgs().Select(a => a == d.Socket ? d.Socket + "2" : a)]);
            Assert.True(second.WaitForExit(20_000));
            Assert.NotEqual(0, second.ExitCode);
            Assert.False(d.Process.HasExited);
            await d.Runtime.VersionAsync(new VersionRequest());
        }
        finally
        {
            if (!holder.HasExited)
                holder.Kill();
            holder.Dispose();
            // flock's child, orphaned when flock was killed.
            if (sleeper != 0)
            {
                try { Signals.Send(sleeper, Signals.SIGKILL); }
                catch (InvalidOperationException) { }
            }
        }
    }

    [Fact]
    public async Task An_infra_process_whose_pid_pin_never_existed_is_killed_at_start()
    {
        await using var d = await DaemonProcess.StartAsync();
        await d.StopAsync();
        // What a Run killed between the infra spawn and the pid pin leaves: the pod's pins, no record,
        // an infra process living in them, and no pid pin leading to it.
        var pinned = Crid.Linux.PodNamespaces.Create(new Crid.Linux.PodNamespacesRequest
        {
            NamespacesDir = d.NamespacesDir,
            Namespaces = [new("net", false), new("ipc", false), new("uts", false)],
            Hostname = "orphan",
        });
        var infra = Crid.Linux.InfraProcess.Start(new Crid.Linux.InfraRequest
        {
            NamespacesDir = d.NamespacesDir,
            Uuid = pinned.Uuid,
            Executable = RepoPaths.Daemon,
            Args = ["crid-pause", "pause"],
            NetNsPath = pinned.Get("net")!.Path,
            IpcNsPath = pinned.Get("ipc")!.Path,
            UtsNsPath = pinned.Get("uts")!.Path,
        });
        try
        {
            infra.Pin.Remove();
            Assert.False(SandboxTests.IsGoneOrZombie(infra.Pid));
            // A Run records the pins' uuid before it pins anything: that record makes them crid's to clean.
            Directory.CreateDirectory(Path.Combine(d.StateDir, "pins"));
            File.WriteAllText(Path.Combine(d.StateDir, "pins", pinned.Uuid), new string('d', 64));

            await d.RestartAsync();
            Assert.True(SandboxTests.IsGoneOrZombie(infra.Pid), "the orphaned infra process still runs");
            Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
            Assert.Empty(Leaks.PinFiles(d.NamespacesDir));
            Assert.Contains($"killed process {infra.Pid}", d.Stderr);
        }
        finally
        {
            // This test process is its parent: reap it (a no-op kill if the daemon did its job).
            Crid.Linux.HelperChild.KillAndReap(infra.Pid);
            foreach (var pin in pinned.Pins)
                pin.Remove();
        }
    }

    [Fact]
    public async Task A_test_that_fails_before_removing_its_pods_leaves_no_infra_process()
    {
        var d = await DaemonProcess.StartAsync();
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("left") })).PodSandboxId;
        var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true });
        using var info = System.Text.Json.JsonDocument.Parse(status.Info["info"]);
        var pid = info.RootElement.GetProperty("infraPid").GetInt32();
        await d.DisposeAsync();
        for (var i = 0; i < 200 && !SandboxTests.IsGoneOrZombie(pid); i++)
            await Task.Delay(10);
        Assert.True(SandboxTests.IsGoneOrZombie(pid), "the last-resort cleanup left the infra process running");
        // No pin and no pod /dev/shm tmpfs: nothing under the test's folder, which is gone.
        Assert.Empty(Cleanup.MountsUnder(d.Dir));
        Assert.False(Directory.Exists(d.Dir));
    }

    /// <summary>With the daemon dead: every record on disk parses (writes are atomic); folders without one are a Run or Remove cut short.</summary>
    private static void AssertRecordsWhole(DaemonProcess d)
    {
        foreach (var dir in Directory.EnumerateDirectories(Path.Combine(d.StateDir, "sandboxes")))
        {
            var record = Path.Combine(dir, SandboxRecord.FileName);
            if (File.Exists(record))
                SandboxRecord.Load(dir);
        }
    }

    /// <summary>Lets the killer hold the clients back while it inspects the dead daemon's leftovers and restarts it.</summary>
    private sealed class Storm
    {
        private readonly object _gate = new();
        private TaskCompletionSource _open = Opened();
        private int _inFlight;
        private volatile bool _done;

        public bool Done => _done;

        private static TaskCompletionSource Opened()
        {
            var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            t.SetResult();
            return t;
        }

        public async Task EnterAsync()
        {
            while (true)
            {
                Task wait;
                lock (_gate)
                {
                    if (_open.Task.IsCompleted)
                    {
                        _inFlight++;
                        return;
                    }
                    wait = _open.Task;
                }
                await wait;
            }
        }

        public void Leave()
        {
            lock (_gate)
                _inFlight--;
        }

        /// <summary>Closes the gate and waits until no call is in flight (the daemon is dead, so they all fail fast).</summary>
        public async Task PauseAsync()
        {
            lock (_gate)
                _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            while (true)
            {
                lock (_gate)
                {
                    if (_inFlight == 0)
                        return;
                }
                await Task.Delay(5);
            }
        }

        public void Resume()
        {
            lock (_gate)
                _open.TrySetResult();
        }

        public void Stop()
        {
            _done = true;
            Resume();
        }
    }
}
