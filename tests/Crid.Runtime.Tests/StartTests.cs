using System.Text;
using Crid.Core.Containers;
using Crid.Core.Errors;
using Crid.Linux;

namespace Crid.Runtime.Tests;

/// <summary>
/// StartAsync speaks runc's start protocol itself (the init waits on &lt;root&gt;/&lt;id&gt;/exec.fifo):
/// what runc then reports, the start that a killed daemon cut short, an init that died first.
/// </summary>
public class StartTests
{
    [Fact]
    public async Task A_start_runs_the_process_and_runc_sees_it_running()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        var created = await rt.CreateAsync(host.Request("s1", host.Bundle("s1", ["sleep", "1000"])), RuntimeHost.Timeout());
        string fifo = Path.Combine(host.Options.RuntimeRoot, "s1", "exec.fifo");
        Assert.True(File.Exists(fifo), "runc create leaves the exec fifo the init waits on");
        Assert.Equal("runc:[2:INIT]", Comm(created.Pid));

        await rt.StartAsync("s1", RuntimeHost.Timeout());
        Assert.False(File.Exists(fifo), "the fifo is removed, as runc start removes it");
        Assert.Equal("sleep", await CommSoonAsync(created.Pid, "sleep"));
        var state = await rt.StateAsync("s1", RuntimeHost.Timeout());
        Assert.Equal((ContainerRuntimeStatus.Running, created.Pid), (state.Status, state.Pid));
        await Assert.ThrowsAsync<FailedPreconditionException>(() => rt.StartAsync("s1", RuntimeHost.Timeout()));
    }

    [Fact]
    public async Task A_process_that_exits_at_once_is_started_and_its_exit_recorded()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        await rt.CreateAsync(host.Request("t", host.Bundle("t", ["true"])), RuntimeHost.Timeout());
        var exit = await RuntimeHost.ExitOfAsync(rt, "t", () => rt.StartAsync("t", RuntimeHost.Timeout()), TimeSpan.FromSeconds(5));
        Assert.Equal(0, exit.ExitCode);
        Assert.False(File.Exists(Path.Combine(host.Options.RuntimeRoot, "t", "exec.fifo")));
    }

    [Fact]
    public async Task A_start_cut_short_after_the_init_ran_its_process_is_finished_by_the_next_start()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        var created = await rt.CreateAsync(host.Request("k", host.Bundle("k", ["sleep", "1000"])), RuntimeHost.Timeout());
        string fifo = Path.Combine(host.Options.RuntimeRoot, "k", "exec.fifo");

        // A daemon killed between the init's byte and the fifo's removal: the process runs, runc
        // still says created (it tells the two apart by the fifo).
        using (var reader = FifoReader.Open(fifo)!)
        {
            Assert.Equal("0", Encoding.ASCII.GetString(await reader.ReadToEndAsync(16, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30))));
        }

        Assert.Equal("sleep", await CommSoonAsync(created.Pid, "sleep"));
        Assert.Equal(ContainerRuntimeStatus.Created, (await rt.StateAsync("k", RuntimeHost.Timeout())).Status);

        await rt.StartAsync("k", RuntimeHost.Timeout()).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(File.Exists(fifo));
        Assert.Equal(ContainerRuntimeStatus.Running, (await rt.StateAsync("k", RuntimeHost.Timeout())).Status);
    }

    [Fact]
    public async Task A_start_after_the_init_died_fails_at_once()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        var created = await rt.CreateAsync(host.Request("d", host.Bundle("d", ["sleep", "1000"])), RuntimeHost.Timeout());
        using (var init = System.Diagnostics.Process.GetProcessById(created.Pid))
        {
            init.Kill();
        }

        await Assert.ThrowsAsync<FailedPreconditionException>(() => rt.StartAsync("d", RuntimeHost.Timeout()).WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(ContainerRuntimeStatus.Stopped, (await rt.StateAsync("d", RuntimeHost.Timeout())).Status);
    }

    /// <summary>The process name once it is <paramref name="expected"/> (exec sets it a moment after it closes the fifo), or as it is after a second.</summary>
    private static async Task<string?> CommSoonAsync(int pid, string expected)
    {
        for (int i = 0; i < 50 && Comm(pid) != expected; i++)
        {
            await Task.Delay(20);
        }

        return Comm(pid);
    }

    private static string? Comm(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n');
        }
        catch (IOException)
        {
            return null;
        }
    }
}
