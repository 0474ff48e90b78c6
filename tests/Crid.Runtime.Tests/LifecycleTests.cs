using Crid.Core.Containers;
using Crid.Core.Errors;

namespace Crid.Runtime.Tests;

/// <summary>Create, start, signal, delete and state through conmon and runc, and exits noticed.</summary>
public class LifecycleTests
{
    [Fact]
    public async Task Create_start_kill_delete_and_the_exit_is_raised_within_a_second()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        var created = await rt.CreateAsync(host.Request("c1", host.Bundle("c1", ["sleep", "1000"])), RuntimeHost.Timeout());
        Assert.True(created.Pid > 0 && created.MonitorPid > 0);
        Assert.True(ConmonRuntime.IsConmonOf(created.MonitorPid, "c1"), "the monitor pid is conmon's, for this container");

        var state = await rt.StateAsync("c1", RuntimeHost.Timeout());
        Assert.Equal(ContainerRuntimeStatus.Created, state.Status);
        Assert.Equal(created.Pid, state.Pid);

        await rt.StartAsync("c1", RuntimeHost.Timeout());
        Assert.Equal(ContainerRuntimeStatus.Running, (await rt.StateAsync("c1", RuntimeHost.Timeout())).Status);
        await Assert.ThrowsAsync<FailedPreconditionException>(() => rt.StartAsync("c1", RuntimeHost.Timeout()));

        var exit = await RuntimeHost.ExitOfAsync(rt, "c1", () => rt.KillAsync("c1", 9, false, RuntimeHost.Timeout()), TimeSpan.FromSeconds(1));
        Assert.Equal(137, exit.ExitCode);
        Assert.False(exit.OomKilled);
        Assert.True(DateTimeOffset.UtcNow - exit.FinishedAt < TimeSpan.FromSeconds(5));

        state = await rt.StateAsync("c1", RuntimeHost.Timeout());
        Assert.Equal(ContainerRuntimeStatus.Stopped, state.Status);
        Assert.Equal(137, state.ExitCode);
        Assert.Equal(exit.FinishedAt, state.FinishedAt);

        // Signalling a stopped container is no error; deleting twice neither.
        await rt.KillAsync("c1", 15, false, RuntimeHost.Timeout());
        await rt.DeleteAsync("c1", RuntimeHost.Timeout());
        await rt.DeleteAsync("c1", RuntimeHost.Timeout());
        await Assert.ThrowsAsync<NotFoundException>(() => rt.StateAsync("c1", RuntimeHost.Timeout()));
        await Assert.ThrowsAsync<NotFoundException>(() => rt.StartAsync("c1", RuntimeHost.Timeout()));
    }

    [Theory]
    [InlineData("exit 0", 0)]
    [InlineData("exit 1", 1)]
    [InlineData("exit 42", 42)]
    public async Task The_exit_code_is_the_process_one(string script, int code)
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        await rt.CreateAsync(host.Request("c", host.Bundle("c", ["sh", "-c", "sleep 0.2; " + script])), RuntimeHost.Timeout());
        var exit = await RuntimeHost.ExitOfAsync(rt, "c", () => rt.StartAsync("c", RuntimeHost.Timeout()), TimeSpan.FromSeconds(5));
        Assert.Equal(code, exit.ExitCode);
        var state = await rt.StateAsync("c", RuntimeHost.Timeout());
        Assert.Equal((ContainerRuntimeStatus.Stopped, code), (state.Status, state.ExitCode));
    }

    [Fact]
    public async Task A_small_memory_limit_ends_in_an_oom_kill()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;

        // tail buffers a "line" of /dev/zero that never ends: it grows until the cgroup kills it.
        await rt.CreateAsync(host.Request("oom", host.Bundle("oom", ["tail", "/dev/zero"], spec =>
            spec["linux"]!["resources"] = new System.Text.Json.Nodes.JsonObject
            {
                ["memory"] = new System.Text.Json.Nodes.JsonObject { ["limit"] = 16L * 1024 * 1024, ["swap"] = 16L * 1024 * 1024 },
            })), RuntimeHost.Timeout());
        var exit = await RuntimeHost.ExitOfAsync(rt, "oom", () => rt.StartAsync("oom", RuntimeHost.Timeout()), TimeSpan.FromSeconds(30));
        Assert.Equal(137, exit.ExitCode);
        Assert.True(exit.OomKilled, "conmon's oom file was not seen");
        Assert.True((await rt.StateAsync("oom", RuntimeHost.Timeout())).OomKilled);
    }

    [Fact]
    public async Task Resources_are_updated_in_the_live_cgroup()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        await host.RunAsync("upd", ["sleep", "1000"], spec =>
            spec["linux"]!["resources"] = new System.Text.Json.Nodes.JsonObject
            {
                ["memory"] = new System.Text.Json.Nodes.JsonObject { ["limit"] = 64L * 1024 * 1024 },
            });
        string cgroup = $"/sys/fs/cgroup/memory/{host.Tag}-upd";
        Assert.Equal("67108864", File.ReadAllText(Path.Combine(cgroup, "memory.limit_in_bytes")).Trim());

        await rt.UpdateResourcesAsync("upd", """{"memory": {"limit": 33554432}, "cpu": {"shares": 512}}"""u8.ToArray(), RuntimeHost.Timeout());
        Assert.Equal("33554432", File.ReadAllText(Path.Combine(cgroup, "memory.limit_in_bytes")).Trim());
        Assert.Equal("512", File.ReadAllText($"/sys/fs/cgroup/cpu/{host.Tag}-upd/cpu.shares").Trim());

        await Assert.ThrowsAsync<InvalidArgumentException>(() => rt.UpdateResourcesAsync("upd", "[1]"u8.ToArray(), RuntimeHost.Timeout()));
        await Assert.ThrowsAsync<NotFoundException>(() => rt.UpdateResourcesAsync("nope", "{}"u8.ToArray(), RuntimeHost.Timeout()));
        Assert.Empty(Directory.GetFiles(Path.Combine(host.Options.StateDir, "containers", "upd"), "update-*"));
    }

    [Fact]
    public async Task Deleting_a_running_container_kills_it_and_leaves_nothing()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        var created = await host.RunAsync("run", ["sleep", "1000"]);
        await rt.DeleteAsync("run", RuntimeHost.Timeout());
        Assert.True(await RuntimeHost.GoneAsync(created.Pid), "the container's process survived");
        Assert.True(await RuntimeHost.GoneAsync(created.MonitorPid), "conmon survived");
        Assert.Empty(host.OurCgroups());
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(host.Options.StateDir, "exits")));
        Assert.Equal(["config.json", "rootfs"], Directory.GetFileSystemEntries(Path.Combine(host.Root, "b", "run")).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task A_created_container_that_never_started_is_deleted_cleanly()
    {
        await using var host = new RuntimeHost();
        var created = await host.Runtime.CreateAsync(host.Request("idle", host.Bundle("idle", ["true"])), RuntimeHost.Timeout());
        await host.Runtime.DeleteAsync("idle", RuntimeHost.Timeout());
        Assert.True(await RuntimeHost.GoneAsync(created.MonitorPid), "conmon survived");
    }

    [Fact]
    public async Task A_bundle_runc_refuses_is_a_clear_error_and_leaves_nothing()
    {
        await using var host = new RuntimeHost();
        string bundle = host.Bundle("bad", ["true"], spec => spec["root"]!["path"] = "/nonexistent-rootfs");
        var e = await Assert.ThrowsAsync<RuntimeFailureException>(() => host.Runtime.CreateAsync(host.Request("bad", bundle), RuntimeHost.Timeout()));
        Assert.Contains("nonexistent-rootfs", e.Message);
        Assert.False(File.Exists(host.LogPath("bad")), "the log file conmon created was left");
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(host.Options.StateDir, "containers")));
        Assert.Empty(host.OurProcesses());
    }

    [Fact]
    public async Task A_bundle_finished_while_conmon_starts_is_the_one_runc_creates()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        string bundle = host.Bundle("late", ["sleep", "1000"]);
        string config = Path.Combine(bundle, "config.json");
        string spec = File.ReadAllText(config);
        File.Delete(config);

        // Written only once conmon runs and waits: runc must get this one.
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var create = rt.CreateAsync(host.Request("late", bundle) with { BundleReady = ready.Task }, RuntimeHost.Timeout());
        await WaitForConmonAsync("late");
        Assert.False(create.IsCompleted, "the create finished before its bundle was ready");
        Assert.False(File.Exists(Path.Combine(host.Options.StateDir, "containers", "late", "conmon.pid")), "conmon forked before it was let go");
        File.WriteAllText(config, spec);
        ready.SetResult();

        var created = await create;
        Assert.True(ConmonRuntime.IsConmonOf(created.MonitorPid, "late"), "the monitor pid is conmon's, for this container");
        await rt.StartAsync("late", RuntimeHost.Timeout());
        Assert.Equal(ContainerRuntimeStatus.Running, (await rt.StateAsync("late", RuntimeHost.Timeout())).Status);
        await rt.DeleteAsync("late", RuntimeHost.Timeout());
    }

    [Fact]
    public async Task A_bundle_that_fails_while_conmon_starts_fails_the_create_as_it_is_and_leaves_nothing()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        string bundle = host.Bundle("broken", ["true"]);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var create = rt.CreateAsync(host.Request("broken", bundle) with { BundleReady = ready.Task }, RuntimeHost.Timeout());
        await WaitForConmonAsync("broken");
        ready.SetException(new InvalidArgumentException("config.command", "the caller's own failure"));

        var e = await Assert.ThrowsAsync<InvalidArgumentException>(() => create);
        Assert.Contains("the caller's own failure", e.Message);
        Assert.False(File.Exists(host.LogPath("broken")), "a log file was left");
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(host.Options.StateDir, "containers")));
        Assert.False(Directory.Exists(Path.Combine(host.Options.RuntimeRoot, "broken")), "runc state was left");
        Assert.Empty(host.OurProcesses());

        // A bundle that reports ready without config.json is refused by name.
        var missing = host.Bundle("noconfig", ["true"]);
        File.Delete(Path.Combine(missing, "config.json"));
        var bad = await Assert.ThrowsAsync<InvalidArgumentException>(() => rt.CreateAsync(host.Request("noconfig", missing) with { BundleReady = Task.CompletedTask }, RuntimeHost.Timeout()));
        Assert.Contains("config.json", bad.Message);
        Assert.Empty(host.OurProcesses());
    }

    /// <summary>The pid of the conmon started for <paramref name="id"/>, once it runs.</summary>
    private static async Task<int> WaitForConmonAsync(string id)
    {
        for (int i = 0; i < 500; i++)
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (int.TryParse(Path.GetFileName(dir), out int pid) && ConmonRuntime.IsConmonOf(pid, id))
                {
                    return pid;
                }
            }

            await Task.Delay(10);
        }

        throw new TimeoutException($"no conmon for {id} within 5 s");
    }

    [Fact]
    public async Task A_create_the_caller_gives_up_on_at_any_moment_leaves_nothing_or_a_whole_container()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        foreach (int ms in new[] { 0, 5, 15, 30, 60, 120 })
        {
            string id = $"cancel{ms}";
            using var cts = new CancellationTokenSource();
            var create = rt.CreateAsync(host.Request(id, host.Bundle(id, ["sleep", "1000"])), cts.Token);
            cts.CancelAfter(ms);
            try
            {
                await create;

                // Finished before the cancellation: a whole container.
                Assert.Equal(ContainerRuntimeStatus.Created, (await rt.StateAsync(id, RuntimeHost.Timeout())).Status);
                await rt.DeleteAsync(id, RuntimeHost.Timeout());
            }
            catch (OperationCanceledException)
            {
                Assert.False(Directory.Exists(Path.Combine(host.Options.StateDir, "containers", id)), $"{id}: driver files left");
                Assert.False(Directory.Exists(Path.Combine(host.Options.RuntimeRoot, id)), $"{id}: runc state left");
                Assert.False(File.Exists(host.LogPath(id)), $"{id}: log file left");
            }

            Assert.Empty(host.OurProcesses());
            Assert.Empty(host.OurCgroups());
        }
    }

    [Fact]
    public async Task Twice_the_same_id_is_already_exists_and_bad_input_is_refused_first()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        string bundle = host.Bundle("dup", ["sleep", "1000"]);
        await rt.CreateAsync(host.Request("dup", bundle), RuntimeHost.Timeout());
        await Assert.ThrowsAsync<AlreadyExistsException>(() => rt.CreateAsync(host.Request("dup", bundle), RuntimeHost.Timeout()));
        Assert.Equal(ContainerRuntimeStatus.Created, (await rt.StateAsync("dup", RuntimeHost.Timeout())).Status);

        await Assert.ThrowsAsync<InvalidArgumentException>(() => rt.CreateAsync(host.Request("../x", bundle), RuntimeHost.Timeout()));
        await Assert.ThrowsAsync<InvalidArgumentException>(() => rt.CreateAsync(host.Request("x", "relative/bundle"), RuntimeHost.Timeout()));
        await Assert.ThrowsAsync<InvalidArgumentException>(() => rt.CreateAsync(host.Request("x", host.Root), RuntimeHost.Timeout()));
        await Assert.ThrowsAsync<InvalidArgumentException>(() => rt.CreateAsync(host.Request("x", bundle) with { LogPath = "/nonexistent-dir/x.log" }, RuntimeHost.Timeout()));
        await Assert.ThrowsAsync<InvalidArgumentException>(() => rt.KillAsync("dup", 0, false, RuntimeHost.Timeout()));
    }
}
