using Crid.Core.Containers;
using Crid.Runtime;
using Crid.Runtime.Tests;
using Crid.Streaming.Containers;
using Crid.Streaming.Tests.Client;

namespace Crid.Streaming.Tests.Runtime;

/// <summary>
/// Exec and attach through the streaming server into real containers (busybox under runc, watched by
/// conmon): the bridges an <see cref="IContainerStreams"/> of the container lifecycle is made of.
/// </summary>
[Collection("containers")]
public sealed class ContainerBridgeTests
{
    [Fact]
    public async Task Exec_in_a_container_with_stdin_stdout_stderr_and_exit_code_3()
    {
        await using var host = new RuntimeHost();
        await host.RunAsync("ex", ["sleep", "1000"]);
        await using var t = await StartAsync(host);
        var url = t.Server.UrlFor(new ExecStreamRequest("ex", ["sh", "-c", "cat; echo to-stderr >&2; exit 3"], Stdin: true, Stdout: true, Stderr: true, Tty: false));
        await using var client = await TestServer.ConnectAsync(url);
        var result = await ExecClient.RunAsync(client, stdin: true, stdout: true, stderr: true, input: "into the container\n");
        Assert.Equal("into the container\n", result.Stdout);
        Assert.Equal("to-stderr\n", result.Stderr);
        Assert.Equal(3, result.ExitCode());
        Assert.Equal(["sleep 1000"], host.LiveProcessesOf("ex"));
    }

    [Fact]
    public async Task Exec_with_a_tty_starts_at_the_clients_size_and_follows_it()
    {
        await using var host = new RuntimeHost();
        await host.RunAsync("tty", ["sleep", "1000"]);
        await using var t = await StartAsync(host);
        var url = t.Server.UrlFor(new ExecStreamRequest("tty", ["sh", "-c", "read a; stty size; read b; stty size; exit 5"], Stdin: true, Stdout: true, Stderr: false, Tty: true));
        await using var client = await TestServer.ConnectAsync(url);
        var error = await client.OpenAsync(("streamType", "error"));
        var stdin = await client.OpenAsync(("streamType", "stdin"));
        var stdout = await client.OpenAsync(("streamType", "stdout"));
        var resize = await client.OpenAsync(("streamType", "resize"));
        await resize.WriteAsync("{\"Width\":100,\"Height\":30}\n");
        var output = stdout.ReadAllTextAsync(TimeSpan.FromSeconds(30));
        var status = error.ReadAllTextAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(300);
        await stdin.WriteAsync("a\n");
        await Task.Delay(300);
        await resize.WriteAsync("{\"Width\":120,\"Height\":40}\n");
        await Task.Delay(300);
        await stdin.WriteAsync("b\n");
        var text = await output;
        Assert.Contains("30 100", text);
        Assert.Contains("40 120", text);
        Assert.Equal(5, new ExecResult(text, "", await status).ExitCode());
    }

    [Fact]
    public async Task A_client_that_vanishes_mid_exec_takes_the_command_with_it()
    {
        await using var host = new RuntimeHost();
        await host.RunAsync("gone", ["sleep", "1000"]);
        await using var t = await StartAsync(host);
        var url = t.Server.UrlFor(new ExecStreamRequest("gone", ["sh", "-c", "echo started; exec sleep 999"], Stdin: false, Stdout: true, Stderr: false, Tty: false));
        var client = await TestServer.ConnectAsync(url);
        await client.OpenAsync(("streamType", "error"));
        var stdout = await client.OpenAsync(("streamType", "stdout"));
        // Vanish once the command runs and says so (not merely once its process shows in the
        // cgroup: the runtime knows the command's pid only a moment later).
        var said = new byte[8];
        Assert.Equal(8, await stdout.ReadAsync(said));
        Assert.Equal("started\n", System.Text.Encoding.ASCII.GetString(said));
        await ExecTests.WaitForAsync(() => host.LiveProcessesOf("gone").Contains("sleep 999"), 20);
        client.Vanish();
        await ExecTests.WaitForAsync(() => !host.LiveProcessesOf("gone").Contains("sleep 999"), 20,
            () => string.Join("; ", host.LiveProcessesOf("gone")) + "\n" + string.Join("\n", t.Log.Lines.Select(l => $"{l.Level} {l.Category}: {l.Message} {l.Error}")));
    }

    [Fact]
    public async Task Attach_to_a_stdin_once_container_ends_when_the_client_closes_stdin()
    {
        await using var host = new RuntimeHost();
        var bundle = host.Bundle("att", ["sh", "-c", "while read line; do echo \"got $line\"; echo \"err $line\" >&2; done; echo bye"]);
        await host.Runtime.CreateAsync(host.Request("att", bundle) with { Stdin = true, StdinOnce = true }, RuntimeHost.Timeout());
        await host.Runtime.StartAsync("att", RuntimeHost.Timeout());
        await using var t = await StartAsync(host, stdinOnce: true);
        var url = t.Server.UrlFor(new AttachStreamRequest("att", Stdin: true, Stdout: true, Stderr: true, Tty: false));
        await using var client = await TestServer.ConnectAsync(url);
        var error = await client.OpenAsync(("streamType", "error"));
        var stdin = await client.OpenAsync(("streamType", "stdin"));
        var stdout = await client.OpenAsync(("streamType", "stdout"));
        var stderr = await client.OpenAsync(("streamType", "stderr"));
        var outText = stdout.ReadAllTextAsync(TimeSpan.FromSeconds(30));
        var errText = stderr.ReadAllTextAsync(TimeSpan.FromSeconds(30));
        await stdin.WriteAsync("hello\n");
        await Task.Delay(500);
        await stdin.CloseAsync();
        Assert.Equal("got hello\nbye\n", await outText);
        Assert.Equal("err hello\n", await errText);
        Assert.Equal(0, new ExecResult("", "", await error.ReadAllTextAsync()).ExitCode());
        // stdin_once: the end of the attached stdin was the end of the container's, and so of the loop.
        for (int i = 0; i < 100 && (await host.Runtime.StateAsync("att", RuntimeHost.Timeout())).Status != ContainerRuntimeStatus.Stopped; i++)
            await Task.Delay(50);
        Assert.Equal(ContainerRuntimeStatus.Stopped, (await host.Runtime.StateAsync("att", RuntimeHost.Timeout())).Status);
    }

    private static async Task<TestServer> StartAsync(RuntimeHost host, bool stdinOnce = false)
    {
        var streams = new RuntimeStreams(host.Runtime, stdinOnce);
        return await TestServer.StartAsync(streams);
    }

    /// <summary>What the container lifecycle's IContainerStreams comes to: a lookup, then the bridges.</summary>
    private sealed class RuntimeStreams(ConmonRuntime runtime, bool stdinOnce) : IContainerStreams
    {
        public string CheckRunning(string containerId) => containerId;

        public Task<int> ExecAsync(string containerId, IReadOnlyList<string> command, ContainerIo io, CancellationToken cancel) =>
            RuntimeExec.RunAsync(runtime, containerId, command, io, cancel);

        public Task AttachAsync(string containerId, ContainerIo io, CancellationToken cancel) =>
            ConmonAttach.RunAsync(runtime.Endpoints(containerId), io, stdinOnce, cancel);
    }
}
