using System.Text;
using System.Text.Json;
using Crid.Streaming.Tests.Client;
using Crid.Streaming.Tests.Host;
using Microsoft.Extensions.Logging;

namespace Crid.Streaming.Tests;

/// <summary>Exec over SPDY through the server, with host processes behind the container interface.</summary>
public sealed class ExecTests
{
    [Fact]
    public async Task Stdout_of_a_command_and_a_v4_success_status()
    {
        await using var t = await TestServer.StartAsync();
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["echo", "hello"]));
        var result = await ExecClient.RunAsync(client, stdin: false, stdout: true, stderr: false);
        Assert.Equal("hello\n", result.Stdout);
        using var status = JsonDocument.Parse(result.Status);
        Assert.Equal("Success", status.RootElement.GetProperty("status").GetString());
        Assert.Equal(0, result.ExitCode());
        // The server says goodbye and closes once everything is said.
        await client.GoAway.WaitAsync(TimeSpan.FromSeconds(10));
        await client.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(t.Log.AtLeast(LogLevel.Warning));
    }

    public static TheoryData<bool, bool, bool> Combinations()
    {
        var data = new TheoryData<bool, bool, bool>();
        foreach (var stdin in new[] { false, true })
            foreach (var stdout in new[] { false, true })
                foreach (var stderr in new[] { false, true })
                    if (stdin || stdout || stderr)
                        data.Add(stdin, stdout, stderr);
        return data;
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public async Task Every_combination_of_streams(bool stdin, bool stdout, bool stderr)
    {
        await using var t = await TestServer.StartAsync();
        var url = t.ExecUrl(["/bin/sh", "-c", "cat; echo to-stderr >&2; echo to-stdout"], stdin, stdout, stderr);
        await using var client = await TestServer.ConnectAsync(url);
        var result = await ExecClient.RunAsync(client, stdin, stdout, stderr, input: stdin ? "typed in\n" : null);
        Assert.Equal(stdout ? (stdin ? "typed in\n" : "") + "to-stdout\n" : "", result.Stdout);
        Assert.Equal(stderr ? "to-stderr\n" : "", result.Stderr);
        Assert.Equal(0, result.ExitCode());
    }

    [Fact]
    public async Task Exit_code_3_is_carried_in_the_v4_error_stream()
    {
        await using var t = await TestServer.StartAsync();
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["/bin/sh", "-c", "echo bye; exit 3"]));
        var result = await ExecClient.RunAsync(client, stdin: false, stdout: true, stderr: false);
        Assert.Equal("bye\n", result.Stdout);
        Assert.Equal(3, result.ExitCode());
        using var status = JsonDocument.Parse(result.Status);
        Assert.Equal("Failure", status.RootElement.GetProperty("status").GetString());
        Assert.Equal("NonZeroExitCode", status.RootElement.GetProperty("reason").GetString());
    }

    [Theory]
    [InlineData("v3.channel.k8s.io")]
    [InlineData("v2.channel.k8s.io")]
    [InlineData("channel.k8s.io")]
    public async Task Before_v4_a_failure_is_text_and_success_is_silence(string protocol)
    {
        await using var t = await TestServer.StartAsync();
        await using (var ok = await TestServer.ConnectAsync(t.ExecUrl(["true"]), protocols: protocol))
            Assert.Equal("", (await ExecClient.RunAsync(ok, false, true, false)).Status);
        await using var failed = await TestServer.ConnectAsync(t.ExecUrl(["/bin/sh", "-c", "exit 3"]), protocols: protocol);
        var result = await ExecClient.RunAsync(failed, false, true, false);
        Assert.Equal("command terminated with non-zero exit code: exit status 3", result.Status);
    }

    [Fact]
    public async Task The_client_order_of_protocols_decides()
    {
        await using var t = await TestServer.StartAsync();
        var answer = await SpdyTestClient.UpgradeAsync(t.ExecUrl(["true"]), ["v9.channel.k8s.io", "v2.channel.k8s.io", "v4.channel.k8s.io"]);
        Assert.Equal(101, answer.Status);
        Assert.Equal("v2.channel.k8s.io", answer.Header("X-Stream-Protocol-Version"));
        Assert.Equal("SPDY/3.1", answer.Header("Upgrade"));
        Assert.Contains("upgrade", answer.Header("Connection")!, StringComparison.OrdinalIgnoreCase);
        await answer.Client!.DisposeAsync();
    }

    [Fact]
    public async Task A_tty_gets_its_size_and_its_resizes()
    {
        await using var t = await TestServer.StartAsync();
        // The shell prints a size only after a line of input, so a slow start cannot see a later size.
        var url = t.ExecUrl(["/bin/sh", "-c", "read a; stty size; read b; stty size; exit 4"], stdin: true, stdout: true, tty: true);
        await using var client = await TestServer.ConnectAsync(url);
        var error = await client.OpenAsync(("streamType", "error"));
        var stdin = await client.OpenAsync(("streamType", "stdin"));
        var stdout = await client.OpenAsync(("streamType", "stdout"));
        var resize = await client.OpenAsync(("streamType", "resize"));
        var status = error.ReadAllTextAsync(TimeSpan.FromSeconds(30));
        await resize.WriteAsync("{\"Width\":100,\"Height\":30}\n");
        await WaitForAsync(() => t.Containers.Resizes.Contains(new TerminalSize(100, 30)));
        await stdin.WriteAsync("a\n");
        var first = await ReadUntilAsync(stdout, "30 100\r\n");
        // Two sizes in one write, the object split across writes: each is a size all the same.
        await resize.WriteAsync("{\"Width\":90,\"Height\":20}\n{\"Width\":120,");
        await resize.WriteAsync("\"Height\":40}\n");
        await WaitForAsync(() => t.Containers.Resizes.Contains(new TerminalSize(120, 40)));
        await stdin.WriteAsync("go\n");
        var text = first + await stdout.ReadAllTextAsync(TimeSpan.FromSeconds(30));
        Assert.EndsWith("40 120\r\n", text);
        Assert.Contains("go", text);
        var result = new ExecResult(text, "", await status);
        Assert.Equal(4, result.ExitCode());
    }

    [Fact]
    public async Task An_unknown_container_is_an_internal_error_on_the_error_stream()
    {
        await using var t = await TestServer.StartAsync();
        var url = t.Server.UrlFor(new ExecStreamRequest("no-such-container", ["true"], false, true, false, false));
        await using var client = await TestServer.ConnectAsync(url);
        var result = await ExecClient.RunAsync(client, false, true, false);
        using var status = JsonDocument.Parse(result.Status);
        Assert.Equal("Failure", status.RootElement.GetProperty("status").GetString());
        Assert.Equal("InternalError", status.RootElement.GetProperty("reason").GetString());
        Assert.Contains("container \"no-such-container\" not found", status.RootElement.GetProperty("message").GetString());
        Assert.Null(result.ExitCode());
    }

    internal static async Task WaitForAsync(Func<bool> condition, double seconds = 10, Func<string>? what = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("condition not met in time" + (what is null ? "" : ": " + what()));
            await Task.Delay(10);
        }
    }

    private static async Task<string> ReadUntilAsync(SpdyTestClient.ClientStream stream, string marker)
    {
        var text = new StringBuilder();
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!text.ToString().Contains(marker, StringComparison.Ordinal))
        {
            int n = await stream.ReadAsync(buffer).WaitAsync(cts.Token);
            Assert.True(n > 0, $"the stream ended before '{marker.Trim()}'; it said: {text}");
            text.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
        return text.ToString();
    }
}
