using Crid.Core.Containers;

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
}
