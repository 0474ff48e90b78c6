using System.Text;
using System.Threading.Channels;
using Crid.Streaming.RemoteCommand;
using Crid.Streaming.Tests.Client;

namespace Crid.Streaming.Tests;

/// <summary>Attach over SPDY to a long-lived "main process", and the resize stream's parsing.</summary>
public sealed class AttachTests
{
    [Fact]
    public async Task Attach_to_a_main_process_reading_stdin()
    {
        await using var t = await TestServer.StartAsync();
        using var main = t.Containers.StartMain("attached", "/bin/sh", "-c", "while read line; do echo \"got $line\"; echo \"err $line\" >&2; done; echo bye");
        var url = t.Server.UrlFor(new AttachStreamRequest("attached", Stdin: true, Stdout: true, Stderr: true, Tty: false));
        await using var client = await TestServer.ConnectAsync(url);
        var error = await client.OpenAsync(("streamType", "error"));
        var stdin = await client.OpenAsync(("streamType", "stdin"));
        var stdout = await client.OpenAsync(("streamType", "stdout"));
        var stderr = await client.OpenAsync(("streamType", "stderr"));
        var outText = stdout.ReadAllTextAsync(TimeSpan.FromSeconds(30));
        var errText = stderr.ReadAllTextAsync(TimeSpan.FromSeconds(30));
        await stdin.WriteAsync("hello\n");
        await stdin.WriteAsync("world\n");
        // stdin_once: closing our stdin ends the process's, and with it the loop.
        await stdin.CloseAsync();
        Assert.Equal("got hello\ngot world\nbye\n", await outText);
        Assert.Equal("err hello\nerr world\n", await errText);
        Assert.Equal(0, new ExecResult("", "", await error.ReadAllTextAsync()).ExitCode());
    }

    [Fact]
    public async Task Attach_output_only_to_a_process_that_exits()
    {
        await using var t = await TestServer.StartAsync();
        using var main = t.Containers.StartMain("talker", "/bin/sh", "-c", "read go; echo one; echo two");
        var url = t.Server.UrlFor(new AttachStreamRequest("talker", Stdin: false, Stdout: true, Stderr: false, Tty: false));
        await using var client = await TestServer.ConnectAsync(url);
        var result = ExecClient.RunAsync(client, stdin: false, stdout: true, stderr: false);
        await Task.Delay(200);
        await main.Process.StandardInput.WriteLineAsync("go");
        await main.Process.StandardInput.FlushAsync();
        Assert.Equal("one\ntwo\n", (await result).Stdout);
    }

    [Theory]
    [InlineData("{\"Width\":80,\"Height\":24}\n", "80x24", false)]
    [InlineData("{\"width\":1,\"height\":2} {\"Height\":3,\"Width\":4,\"Extra\":[1,{}]}", "1x2 4x3", false)]
    [InlineData("{\"Width\":80,\"Hei", "", false)]
    [InlineData("{\"Width\":70000,\"Height\":1}", "", true)]
    [InlineData("[1,2]", "", true)]
    [InlineData("{\"Width\":\"80\"}", "", true)]
    [InlineData("{\"Width\":5,\"Height\":6}garbage", "5x6", true)]
    public void Resize_objects_are_parsed_as_they_come(string text, string sizes, bool broken)
    {
        var channel = Channel.CreateUnbounded<TerminalSize>();
        ResizeReader.Parse(Encoding.UTF8.GetBytes(text), channel.Writer, out var isBroken);
        var got = new List<string>();
        while (channel.Reader.TryRead(out var size))
            got.Add($"{size.Width}x{size.Height}");
        Assert.Equal(sizes, string.Join(" ", got));
        Assert.Equal(broken, isBroken);
    }
}
