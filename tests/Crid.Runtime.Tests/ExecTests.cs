using System.Diagnostics;
using System.Text;
using Crid.Core.Containers;
using Crid.Core.Errors;

namespace Crid.Runtime.Tests;

/// <summary>ExecSync and the interactive exec primitive, against a running busybox container.</summary>
public class ExecTests
{
    private static async Task<RuntimeHost> HostWithRunningAsync(string id)
    {
        var host = new RuntimeHost();
        await host.RunAsync(id, ["sleep", "1000"]);
        return host;
    }

    private static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    [Fact]
    public async Task ExecSync_returns_the_exit_code_and_stdout_and_stderr_apart()
    {
        await using var host = await HostWithRunningAsync("e");
        var r = await host.Runtime.ExecSyncAsync(new ExecSyncRequest { Id = "e", Command = ["sh", "-c", "echo out; echo err >&2; echo more; exit 3"] }, RuntimeHost.Timeout());
        Assert.Equal(3, r.ExitCode);
        Assert.Equal("out\nmore\n", Text(r.Stdout));
        Assert.Equal("err\n", Text(r.Stderr));
        Assert.False(r.TimedOut);
        Assert.False(r.Truncated);

        r = await host.Runtime.ExecSyncAsync(new ExecSyncRequest { Id = "e", Command = ["true"] }, RuntimeHost.Timeout());
        Assert.Equal((0, 0, 0), (r.ExitCode, r.Stdout.Length, r.Stderr.Length));

        // A command the container does not have is runc's failure, with runc's words, not an exit code.
        var missing = await Assert.ThrowsAsync<RuntimeFailureException>(() => host.Runtime.ExecSyncAsync(new ExecSyncRequest { Id = "e", Command = ["nope"] }, RuntimeHost.Timeout()));
        Assert.Contains("nope", missing.Message);

        // The container's spec applies: its environment, its root.
        r = await host.Runtime.ExecSyncAsync(new ExecSyncRequest { Id = "e", Command = ["sh", "-c", "echo $PATH; cat /proc/1/cmdline"] }, RuntimeHost.Timeout());
        Assert.Equal("/bin\nsleep\01000\0", Text(r.Stdout));
    }

    [Fact]
    public async Task Many_execs_at_once_leave_no_descriptor_child_or_file()
    {
        await using var host = await HostWithRunningAsync("many");
        await host.Runtime.ExecSyncAsync(new ExecSyncRequest { Id = "many", Command = ["true"] }, RuntimeHost.Timeout());
        int fds = Directory.GetFiles("/proc/self/fd").Length;
        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(i =>
            host.Runtime.ExecSyncAsync(new ExecSyncRequest { Id = "many", Command = ["sh", "-c", $"echo {i}; exit {i % 3}"] }, RuntimeHost.Timeout())));
        for (int i = 0; i < results.Length; i++)
        {
            Assert.Equal((i % 3, $"{i}\n"), (results[i].ExitCode, Text(results[i].Stdout)));
        }

        await using (var s = await host.Runtime.ExecAsync(new ExecRequest { Id = "many", Command = ["true"], Tty = true }, RuntimeHost.Timeout()))
        {
            await s.Exited.WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.InRange(Directory.GetFiles("/proc/self/fd").Length, 0, fds + 2);
        Assert.Empty(Directory.GetFiles(Path.Combine(host.Options.StateDir, "containers", "many"), "exec-*"));
        // Children (live or zombie) of any thread of this process: every runc was reaped.
        Assert.Empty(Directory.GetDirectories("/proc/self/task").SelectMany(t =>
        {
            try
            {
                return File.ReadAllText(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            }
            catch (IOException)
            {
                return [];
            }
        }));
    }

    [Fact]
    public async Task ExecSync_caps_20_MiB_of_output_at_the_limit_and_keeps_the_exit_code()
    {
        await using var host = await HostWithRunningAsync("big");
        var r = await host.Runtime.ExecSyncAsync(new ExecSyncRequest { Id = "big", Command = ["sh", "-c", "head -c 20971520 /dev/zero; exit 5"] }, RuntimeHost.Timeout());
        Assert.Equal(5, r.ExitCode);
        Assert.Equal(16 * 1024 * 1024, r.Stdout.Length);
        Assert.True(r.Truncated);
    }

    [Fact]
    public async Task ExecSync_past_its_timeout_kills_the_process_group_and_says_so()
    {
        await using var host = await HostWithRunningAsync("slow");
        var clock = Stopwatch.StartNew();
        var r = await host.Runtime.ExecSyncAsync(new ExecSyncRequest { Id = "slow", Command = ["sh", "-c", "echo started; sleep 100 & sleep 100"], Timeout = TimeSpan.FromSeconds(1) }, RuntimeHost.Timeout());
        Assert.True(r.TimedOut);
        Assert.Equal(-1, r.ExitCode);
        Assert.Equal("started\n", Text(r.Stdout));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");

        // Neither sleep survived (killed ones stay zombies of the container's init, which reaps nothing).
        Assert.Equal(["sleep 1000"], host.LiveProcessesOf("slow"));
    }

    [Fact]
    public async Task Exec_in_a_container_that_is_not_running_is_a_failed_precondition()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        await rt.CreateAsync(host.Request("gone", host.Bundle("gone", ["true"])), RuntimeHost.Timeout());
        await RuntimeHost.ExitOfAsync(rt, "gone", () => rt.StartAsync("gone", RuntimeHost.Timeout()), TimeSpan.FromSeconds(5));
        await Assert.ThrowsAsync<FailedPreconditionException>(() => rt.ExecSyncAsync(new ExecSyncRequest { Id = "gone", Command = ["true"] }, RuntimeHost.Timeout()));
        await Assert.ThrowsAsync<FailedPreconditionException>(() => rt.ExecAsync(new ExecRequest { Id = "gone", Command = ["true"] }, RuntimeHost.Timeout()));
        await Assert.ThrowsAsync<NotFoundException>(() => rt.ExecSyncAsync(new ExecSyncRequest { Id = "never", Command = ["true"] }, RuntimeHost.Timeout()));
        await Assert.ThrowsAsync<InvalidArgumentException>(() => rt.ExecSyncAsync(new ExecSyncRequest { Id = "gone", Command = [] }, RuntimeHost.Timeout()));
    }

    [Fact]
    public async Task Interactive_exec_without_a_tty_has_three_streams_and_an_exit_code()
    {
        await using var host = await HostWithRunningAsync("i");
        await using (var cat = await host.Runtime.ExecAsync(new ExecRequest { Id = "i", Command = ["sh", "-c", "cat; echo bye >&2; exit 7"], Stdin = true }, RuntimeHost.Timeout()))
        {
            await cat.Stdin!.WriteAsync("hello\nworld\n"u8.ToArray());
            await cat.Stdin.DisposeAsync(); // end of input: cat ends
            var stdout = ReadAllAsync(cat.Stdout!);
            var stderr = ReadAllAsync(cat.Stderr!);
            Assert.Equal(7, await cat.Exited.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal("hello\nworld\n", await stdout);
            Assert.Equal("bye\n", await stderr);
        }

        // A session disposed while its command runs kills the command.
        var sleeper = await host.Runtime.ExecAsync(new ExecRequest { Id = "i", Command = ["sleep", "100"] }, RuntimeHost.Timeout());
        await sleeper.DisposeAsync();
        Assert.NotEqual(0, await sleeper.Exited.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(["sleep 1000"], host.LiveProcessesOf("i"));
    }

    [Fact]
    public async Task Interactive_exec_with_a_tty_is_a_terminal_that_resizes()
    {
        await using var host = await HostWithRunningAsync("t");
        await using var sh = await host.Runtime.ExecAsync(new ExecRequest
        {
            Id = "t",
            Command = ["sh", "-c", "read x; stty size; read y; stty size; tty; exit 4"],
            Tty = true,
            Stdin = true,
            InitialSize = (24, 80),
        }, RuntimeHost.Timeout());
        Assert.Null(sh.Stderr);
        var output = new StringBuilder();
        var reader = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            int n;
            while ((n = await sh.Stdout!.ReadAsync(buffer)) > 0)
            {
                lock (output)
                {
                    output.Append(Encoding.UTF8.GetString(buffer, 0, n));
                }
            }
        });

        // runc sizes the container's terminal just after the command started: a command that asks
        // at once may still see 0 0, so this one first waits for a line.
        await Task.Delay(300);
        await sh.Stdin!.WriteAsync("a\n"u8.ToArray());
        await WaitForAsync(() => { lock (output) { return output.ToString().Contains("24 80", StringComparison.Ordinal); } }, () => output.ToString());
        sh.Resize(40, 100);
        await Task.Delay(300); // runc relays the new size on SIGWINCH
        await sh.Stdin.WriteAsync("b\n"u8.ToArray());
        Assert.Equal(4, await sh.Exited.WaitAsync(TimeSpan.FromSeconds(10)));
        await reader.WaitAsync(TimeSpan.FromSeconds(5));
        string text = output.ToString();
        Assert.Contains("40 100", text);
        Assert.Contains("/dev/pts/", text);
        Assert.Contains("\r\n", text); // a terminal's line endings, not a pipe's
    }

    private static async Task<string> ReadAllAsync(Stream s)
    {
        var ms = new MemoryStream();
        await s.CopyToAsync(ms);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    private static async Task WaitForAsync(Func<bool> condition, Func<string>? context = null)
    {
        for (int i = 0; i < 250 && !condition(); i++)
        {
            await Task.Delay(20);
        }

        Assert.True(condition(), "timed out waiting " + context?.Invoke());
    }
}
