using Crid.Core.Containers;
using Crid.Linux;

namespace Crid.Runtime.Tests;

/// <summary>Containers outlive the driver; a new one over the same folders finds them and their exits.</summary>
public class RestartTests
{
    [Fact]
    public async Task A_container_keeps_running_without_its_driver_and_a_new_driver_finds_and_watches_it()
    {
        await using var host = new RuntimeHost();
        var created = await host.RunAsync("keep", ["sleep", "1000"]);

        var fresh = host.Restart();
        Assert.True(Directory.Exists($"/proc/{created.Pid}") && Directory.Exists($"/proc/{created.MonitorPid}"), "the container or its conmon died with the driver");
        var states = await fresh.RecoverAsync(["keep"], RuntimeHost.Timeout());
        Assert.Equal(ContainerRuntimeStatus.Running, states["keep"].Status);
        Assert.Equal(created.Pid, states["keep"].Pid);

        // The new driver hears the exit.
        var exit = await RuntimeHost.ExitOfAsync(fresh, "keep", () => fresh.KillAsync("keep", 9, false, RuntimeHost.Timeout()), TimeSpan.FromSeconds(1));
        Assert.Equal(137, exit.ExitCode);
    }

    /// <summary>
    /// A restart with many live containers must not exec runc once per container (1,000 of them
    /// kept the socket down for over a minute under load): a live one's state is read as runc reads
    /// it, a stopped one's from the exit file its conmon wrote; runc is still asked about a paused one.
    /// </summary>
    [Fact]
    public async Task Recovery_reads_live_states_and_exits_without_runc_and_asks_runc_about_a_paused_one()
    {
        await using var host = new RuntimeHost();
        var live = await host.RunAsync("live", ["sleep", "1000"]);
        var made = await host.Runtime.CreateAsync(host.Request("made", host.Bundle("made", ["sleep", "1000"])), RuntimeHost.Timeout());
        await host.RunAsync("held", ["sleep", "1000"]);
        await RuncAsync(host, "pause", "held");
        await host.RunAsync("done", ["true"]);
        for (int i = 0; i < 500 && !File.Exists(Path.Combine(host.Options.StateDir, "exits", "done")); i++)
        {
            await Task.Delay(20);
        }
        host.Runtime.Dispose();

        // The restarted driver's runc writes down every call it gets.
        string calls = Path.Combine(host.Root, "runc-calls");
        string wrapper = Path.Combine(Directory.CreateDirectory(Path.Combine(host.Root, "bin")).FullName, "runc");
        File.WriteAllText(wrapper, $"#!/bin/sh\necho \"$*\" >> {calls}\nexec /usr/sbin/runc \"$@\"\n");
        File.SetUnixFileMode(wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using (var fresh = new ConmonRuntime(host.Options with { RuntimePath = wrapper }))
        {
            var states = await fresh.RecoverAsync(["live", "made", "held", "done"], RuntimeHost.Timeout());
            Assert.Equal((ContainerRuntimeStatus.Running, live.Pid), (states["live"].Status, states["live"].Pid));
            Assert.Equal((ContainerRuntimeStatus.Created, made.Pid), (states["made"].Status, states["made"].Pid));
            Assert.Equal(ContainerRuntimeStatus.Paused, states["held"].Status);
            Assert.Equal((ContainerRuntimeStatus.Stopped, (int?)0), (states["done"].Status, states["done"].ExitCode));
        }

        var asked = File.Exists(calls) ? File.ReadAllLines(calls) : [];
        Assert.DoesNotContain(asked, c => c.EndsWith(" live", StringComparison.Ordinal) || c.EndsWith(" made", StringComparison.Ordinal));
        Assert.Contains(asked, c => c.EndsWith("state held", StringComparison.Ordinal));
        Assert.DoesNotContain(asked, c => c.EndsWith(" done", StringComparison.Ordinal));

        await RuncAsync(host, "resume", "held");
        host.Restart();
    }

    private static async Task RuncAsync(RuntimeHost host, string verb, string id)
    {
        using var runc = System.Diagnostics.Process.Start("/usr/sbin/runc", ["--root", host.Options.RuntimeRoot, verb, id]);
        await runc!.WaitForExitAsync();
        Assert.Equal(0, runc.ExitCode);
    }

    [Fact]
    public async Task Recovery_deletes_a_container_the_lifecycle_never_recorded()
    {
        await using var host = new RuntimeHost();
        var orphan = await host.RunAsync("orphan", ["sleep", "1000"]);
        await host.RunAsync("kept", ["sleep", "1000"]);
        var fresh = host.Restart();
        var states = await fresh.RecoverAsync(["kept"], RuntimeHost.Timeout());
        Assert.Equal(["kept"], states.Keys);
        Assert.Equal(ContainerRuntimeStatus.Running, states["kept"].Status);
        Assert.True(await RuntimeHost.GoneAsync(orphan.MonitorPid), "the orphan's conmon survived");
        Assert.False(Directory.Exists(Path.Combine(host.Options.RuntimeRoot, "orphan")));
        Assert.False(Directory.Exists(Path.Combine(host.Options.StateDir, "containers", "orphan")));
    }

    [Fact]
    public async Task Exits_while_no_driver_watched_are_found_at_recovery_and_not_raised_again()
    {
        await using var host = new RuntimeHost();
        await host.RunAsync("quick", ["sh", "-c", "sleep 0.3; exit 3"]);
        await host.RunAsync("slow", ["sleep", "1000"]);
        host.Runtime.Dispose();

        // The daemon is "down": one container exits on its own, another is killed from outside.
        await Task.Delay(600);
        using (var kill = System.Diagnostics.Process.Start("/usr/sbin/runc", ["--root", host.Options.RuntimeRoot, "kill", "slow", "KILL"]))
        {
            await kill!.WaitForExitAsync();
        }

        // Both recorded by their conmon before a driver is back.
        for (int i = 0; i < 500 && !(File.Exists(Path.Combine(host.Options.StateDir, "exits", "quick")) && File.Exists(Path.Combine(host.Options.StateDir, "exits", "slow"))); i++)
        {
            await Task.Delay(20);
        }

        var raised = new List<string>();
        var fresh = host.Restart();
        fresh.ContainerExited += e => { lock (raised) { raised.Add(e.Id); } };
        var states = await fresh.RecoverAsync(["quick", "slow", "forgotten"], RuntimeHost.Timeout());
        Assert.Equal((ContainerRuntimeStatus.Stopped, (int?)3), (states["quick"].Status, states["quick"].ExitCode));
        Assert.Equal((ContainerRuntimeStatus.Stopped, (int?)137), (states["slow"].Status, states["slow"].ExitCode));
        Assert.NotNull(states["quick"].FinishedAt);

        // An id the runtime never knew: stopped, with no exit recorded.
        Assert.Equal((ContainerRuntimeStatus.Stopped, (int?)null), (states["forgotten"].Status, states["forgotten"].ExitCode));
        await Task.Delay(300);
        lock (raised)
        {
            Assert.Empty(raised);
        }
    }

    /// <summary>
    /// What a <c>runc create</c> killed half-way leaves (a cgroup, a runc folder without state.json)
    /// and a monitor still running for an id nobody recorded: recovery kills that monitor and its
    /// children, and removes the rest. A monitor-like process of a recorded container, or of
    /// another driver's folder, is left alone.
    /// </summary>
    [Fact]
    public async Task Recovery_kills_the_monitor_tree_of_an_unrecorded_create_and_removes_its_cgroup_but_nobody_elses()
    {
        await using var host = new RuntimeHost();
        string bundle = host.Bundle("cut", ["sleep", "1"]);
        string persist = Path.Combine(host.Options.StateDir, "containers", "cut");
        Directory.CreateDirectory(persist);
        File.CreateSymbolicLink(Path.Combine(persist, "bundle"), bundle);
        Directory.CreateDirectory(Path.Combine(host.Options.RuntimeRoot, "cut"));
        var cgroups = new List<string>();
        foreach (var hierarchy in Directory.EnumerateDirectories("/sys/fs/cgroup"))
        {
            if (File.Exists(Path.Combine(hierarchy, "cgroup.procs")))
            {
                cgroups.Add(Directory.CreateDirectory(Path.Combine(hierarchy, $"{host.Tag}-cut")).FullName);
            }
        }

        // argv[0] "conmon" and the driver's --persist-dir are what marks a monitor; the shell's
        // background sleep is its child, as runc create is conmon's.
        ChildProcess Monitor(string persistDir) => ChildProcess.Start(new SpawnOptions
        {
            Executable = "/bin/sh",
            Args = ["conmon", "-c", "sleep 1000 & wait", "--persist-dir", persistDir],
            NewSession = true,
        });
        var orphan = Monitor(persist);
        string keptDir = Directory.CreateDirectory(Path.Combine(host.Options.StateDir, "containers", "kept")).FullName;
        var kept = Monitor(keptDir);
        string elsewhere = Path.Combine(host.Root, "other", "containers", "cut");
        var other = Monitor(elsewhere);
        try
        {
            int child = await WaitForChildAsync(orphan.Pid);
            var states = await host.Restart().RecoverAsync(["kept"], RuntimeHost.Timeout());
            Assert.Equal(["kept"], states.Keys);
            Assert.Equal(128 + 9, (await orphan.Exited.WaitAsync(TimeSpan.FromSeconds(5))).Code);
            Assert.False(kept.Exited.IsCompleted || other.Exited.IsCompleted, "a monitor that was not the orphan's was killed");
            Assert.True(await RuntimeHost.GoneAsync(child), "the orphan monitor's child survived");
            Assert.All(cgroups, cg => Assert.False(Directory.Exists(cg), cg));
            Assert.False(Directory.Exists(Path.Combine(host.Options.RuntimeRoot, "cut")));
            Assert.False(Directory.Exists(persist));
        }
        finally
        {
            foreach (var p in new[] { orphan, kept, other })
            {
                ChildProcess.SignalGroupOf(p.Pid, 9);
                await p.Exited;
            }

            Directory.Delete(keptDir);
        }
    }

    /// <summary>Until the shell has started its sleep (the tree to kill is whole); the sleep's pid.</summary>
    private static async Task<int> WaitForChildAsync(int pid)
    {
        for (int i = 0; i < 500; i++)
        {
            string children = File.ReadAllText($"/proc/{pid}/task/{pid}/children").Trim();
            if (children.Length > 0)
            {
                return int.Parse(children.Split(' ')[0]);
            }

            await Task.Delay(10);
        }

        Assert.Fail($"{pid} never started its child");
        return 0;
    }
}
