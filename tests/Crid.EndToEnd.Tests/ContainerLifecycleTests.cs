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
}
