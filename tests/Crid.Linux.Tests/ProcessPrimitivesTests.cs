using System.Runtime.InteropServices;
using System.Text;
using Crid.Linux;

namespace Crid.Linux.Tests;

/// <summary>The primitives the container drivers stand on: spawning, exits, polling, inotify, ptys, fifos.</summary>
public class ProcessPrimitivesTests
{
    private static async Task<(ProcessExit Exit, string Output)> RunAsync(SpawnOptions options)
    {
        var (ours, theirs) = SocketPair.Create();
        ChildProcess child;
        using (theirs)
        {
            child = ChildProcess.Start(options with { Fds = new Dictionary<int, SafeHandle>(options.Fds) { [1] = theirs } });
        }

        using var stream = new System.Net.Sockets.NetworkStream(ours, ownsSocket: true);
        var output = new MemoryStream();
        await stream.CopyToAsync(output);
        return (await child.Exited.WaitAsync(TimeSpan.FromSeconds(10)), Encoding.UTF8.GetString(output.ToArray()));
    }

    [Fact]
    public async Task A_child_gets_its_argv_environment_folder_and_descriptors_and_nothing_else()
    {
        string dir = Directory.CreateTempSubdirectory("crid-spawn-").FullName;
        try
        {
            var (extraOurs, extraTheirs) = SocketPair.Create();
            using (extraOurs)
            using (extraTheirs)
            {
                var (exit, output) = await RunAsync(new SpawnOptions
                {
                    Executable = "/bin/sh",
                    Args = ["sh", "-c", "echo \"$0 $FOO $(pwd)\"; ls /proc/self/fd | sort -n | tr '\\n' ' '; exit 7", "arg0"],
                    Environment = ["FOO=bar"],
                    WorkingDirectory = dir,
                    Fds = new Dictionary<int, SafeHandle> { [4] = extraTheirs },
                    NewProcessGroup = true,
                });
                Assert.Equal(new ProcessExit(7, 0), exit);
                Assert.Equal(7, exit.Code);
                string[] lines = output.Split('\n');
                Assert.Equal($"arg0 bar {dir}", lines[0]);

                // 0-2, the given 4, and ls's own directory fd 3: none of the daemon's descriptors leak.
                Assert.Equal("0 1 2 3 4 ", lines[1]);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// conmon's start pipe: once our end is gone (a crash closes it as Dispose does), the child's
    /// read fails instead of reading the end of the stream, which conmon would take for the start.
    /// What was sent before is still read first.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_reset_on_close_pair_reads_an_error_not_the_end_once_our_end_is_closed(bool sendFirst)
    {
        var (ours, theirs) = SocketPair.CreateResetOnClose();
        using var child = new System.Net.Sockets.Socket(new System.Net.Sockets.SafeSocketHandle(theirs.DangerousGetHandle(), ownsHandle: false));
        using (theirs)
        {
            if (sendFirst)
            {
                Assert.Equal(1, ours.Send([42]));
            }

            ours.Dispose();
            var buffer = new byte[16];
            if (sendFirst)
            {
                Assert.Equal(1, child.Receive(buffer));
                Assert.Equal(42, buffer[0]);
            }

            var e = Assert.Throws<System.Net.Sockets.SocketException>(() => child.Receive(buffer));
            Assert.Equal(System.Net.Sockets.SocketError.ConnectionReset, e.SocketErrorCode);
        }
    }

    [Fact]
    public void A_plain_pair_reads_the_end_once_our_end_is_closed()
    {
        var (ours, theirs) = SocketPair.Create();
        using var child = new System.Net.Sockets.Socket(new System.Net.Sockets.SafeSocketHandle(theirs.DangerousGetHandle(), ownsHandle: false));
        using (theirs)
        {
            ours.Dispose();
            Assert.Equal(0, child.Receive(new byte[16]));
        }
    }

    [Fact]
    public async Task A_signal_ends_a_child_and_a_reaped_child_cannot_be_signalled()
    {
        var child = ChildProcess.Start(new SpawnOptions { Executable = "/bin/sleep", Args = ["sleep", "100"] });
        Assert.True(ChildProcess.IsAlive(child.Pid));
        Assert.True(child.Signal(15));
        var exit = await child.Exited.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal((15, 143), (exit.Signal, exit.Code));
        Assert.False(child.Signal(9));
        Assert.False(ChildProcess.IsAlive(child.Pid) && File.Exists($"/proc/{child.Pid}/status") && File.ReadAllText($"/proc/{child.Pid}/status").Contains("sleep"), "not reaped");
    }

    [Fact]
    public void A_missing_executable_is_an_io_error_naming_it()
    {
        var e = Assert.ThrowsAny<IOException>(() => ChildProcess.Start(new SpawnOptions { Executable = "/nonexistent/tool", Args = ["tool"] }));
        Assert.Contains("/nonexistent/tool", e.Message);
        Assert.Contains("ENOENT", e.Message);
    }

    [Fact]
    public async Task Waiting_for_a_process_that_is_not_ours_completes_when_it_ends()
    {
        var child = ChildProcess.Start(new SpawnOptions { Executable = "/bin/sleep", Args = ["sleep", "0.2"] });
        await ChildProcess.WaitForExitAsync(child.Pid, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        await child.Exited.WaitAsync(TimeSpan.FromSeconds(5));

        // Gone already: at once.
        await ChildProcess.WaitForExitAsync(child.Pid, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(1));

        // A cancelled wait ends the wait, not the process.
        var sleeper = ChildProcess.Start(new SpawnOptions { Executable = "/bin/sleep", Args = ["sleep", "100"] });
        using var cts = new CancellationTokenSource(100);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ChildProcess.WaitForExitAsync(sleeper.Pid, cts.Token));
        Assert.True(ChildProcess.IsAlive(sleeper.Pid));
        sleeper.Signal(9);
        await sleeper.Exited;
    }

    [Fact]
    public async Task Inotify_reports_a_rename_into_the_folder()
    {
        string dir = Directory.CreateTempSubdirectory("crid-inotify-").FullName;
        try
        {
            using var inotify = new Inotify();
            inotify.Watch(dir, Inotify.MovedTo);
            var read = inotify.ReadAsync(CancellationToken.None).AsTask();
            await Task.Delay(50);
            Assert.False(read.IsCompleted);
            File.WriteAllText(Path.Combine(dir, "x.tmp"), "1");
            File.Move(Path.Combine(dir, "x.tmp"), Path.Combine(dir, "x"));
            var events = await read.WaitAsync(TimeSpan.FromSeconds(5));
            Assert.Equal("x", Assert.Single(events).Name);

            using var cts = new CancellationTokenSource(50);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => inotify.ReadAsync(cts.Token).AsTask());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_pty_is_a_raw_terminal_of_a_given_size_for_its_child()
    {
        using var pty = Pty.Open(30, 120);
        var (output, input) = pty.OpenStreams();
        using (output)
        using (input)
        {
            var child = ChildProcess.Start(new SpawnOptions
            {
                Executable = "/bin/sh",
                Args = ["sh", "-c", "stty size; tty; read x; echo got:$x"],
                ControllingTerminal = pty.SlavePath,
            });
            await input.WriteAsync("abc\n"u8.ToArray());
            var text = new StringBuilder();
            var buffer = new byte[1024];
            int n;
            while ((n = await output.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(5))) > 0)
            {
                text.Append(Encoding.UTF8.GetString(buffer, 0, n));
            }

            Assert.Equal(0, (await child.Exited.WaitAsync(TimeSpan.FromSeconds(5))).Code);
            string s = text.ToString();

            // Raw: no echo of "abc", no \r added to the child's \n.
            Assert.Equal($"30 120\n{pty.SlavePath}\ngot:abc\n", s);
        }
    }

    [Fact]
    public void A_fifo_nobody_reads_is_refused_without_waiting()
    {
        string dir = Directory.CreateTempSubdirectory("crid-fifo-").FullName;
        try
        {
            string fifo = Path.Combine(dir, "ctl");
            Assert.Equal(0, TestHost.Run("mkfifo", fifo).Code);
            Assert.False(Fifo.TryWrite(fifo, "2 0 0\n"));
            Assert.False(Fifo.TryWrite(Path.Combine(dir, "missing"), "x"));
            // O_RDWR: on Linux a fifo opened for both never waits for the other side (fifo(7)).
            using var reader = new FileStream(fifo, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, 1);
            Assert.True(Fifo.TryWrite(fifo, "2 0 0\n"));
            var buffer = new byte[16];
            Assert.Equal("2 0 0\n", Encoding.ASCII.GetString(buffer, 0, reader.Read(buffer)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
