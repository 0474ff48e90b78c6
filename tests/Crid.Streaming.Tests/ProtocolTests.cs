using System.Buffers.Binary;
using System.Security.Cryptography;
using Crid.Streaming.Tests.Client;
using Crid.Streaming.Tests.Host;

namespace Crid.Streaming.Tests;

/// <summary>SPDY/3.1 itself: PING, RST_STREAM, GOAWAY, violations, half-close and flow control.</summary>
public sealed class ProtocolTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Pings_are_answered()
    {
        await using var t = await TestServer.StartAsync();
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["sleep", "5"]));
        for (int i = 0; i < 3; i++)
            await client.PingAsync(Wait);
        Assert.Equal(3, client.Frames.Count(f => f.Type == "PING"));
        Assert.Equal([1u, 3u, 5u], client.Frames.Where(f => f.Type == "PING").Select(f => f.Value));
    }

    [Fact]
    public async Task Stream_ids_that_are_even_or_go_backwards_are_reset_with_protocol_error()
    {
        await using var t = await TestServer.StartAsync();
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["sleep", "5"]));
        var even = await client.OpenNoWaitAsync([new("streamtype", "error")], id: 2);
        await even.FinReceived.WaitAsync(Wait);
        Assert.Equal(1u, even.ResetStatus);
        await client.OpenAsync(("streamType", "error"));
        var backwards = await client.OpenNoWaitAsync([new("streamtype", "stdout")], id: 1);
        await WaitForFrameAsync(client, f => f.Type == "RST_STREAM" && f.StreamId == 1 && f.Value == 1);
        // The connection survives stream errors.
        await client.PingAsync(Wait);
    }

    [Fact]
    public async Task Data_for_a_stream_never_opened_is_reset_as_invalid()
    {
        await using var t = await TestServer.StartAsync();
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["sleep", "5"]));
        await client.SendRawAsync(SpdyTestClient.Data(41, 0, "boo"u8));
        await WaitForFrameAsync(client, f => f.Type == "RST_STREAM" && f.StreamId == 41 && f.Value == 2);
        await client.PingAsync(Wait);
    }

    [Theory]
    [InlineData("version 2")]
    [InlineData("corrupt headers")]
    [InlineData("huge control frame")]
    [InlineData("short ping")]
    public async Task Session_errors_end_the_connection_with_a_protocol_error_goaway(string violation)
    {
        await using var t = await TestServer.StartAsync();
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["sleep", "30"], stdin: true));
        await client.OpenAsync(("streamType", "error"));
        byte[] frame = violation switch
        {
            "version 2" => [0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1],
            "corrupt headers" => SpdyTestClient.Control(1, 0, [0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            "huge control frame" => [0x80, 0x03, 0x00, 0x04, 0, 0x7F, 0xFF, 0xFF],
            _ => SpdyTestClient.Control(6, 0, [0, 1]),
        };
        await client.SendRawAsync(frame);
        var (_, status) = await client.GoAway.WaitAsync(Wait);
        Assert.Equal(1u, status);
        await client.Closed.WaitAsync(Wait);
        // No exec was started for a session that never got its streams.
        Assert.Empty(t.Containers.ExecPids);
    }

    [Fact]
    public async Task A_reset_stdin_is_the_end_of_the_input()
    {
        await using var t = await TestServer.StartAsync();
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["cat"], stdin: true));
        var error = await client.OpenAsync(("streamType", "error"));
        var stdin = await client.OpenAsync(("streamType", "stdin"));
        var stdout = await client.OpenAsync(("streamType", "stdout"));
        var output = stdout.ReadAllTextAsync(Wait);
        await stdin.WriteAsync("before the reset\n");
        await stdin.ResetAsync();
        Assert.Equal("before the reset\n", await output);
        Assert.Equal(0, new ExecResult("", "", await error.ReadAllTextAsync(Wait)).ExitCode());
    }

    [Fact]
    public async Task After_the_clients_goaway_its_open_streams_carry_on()
    {
        await using var t = await TestServer.StartAsync();
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["cat"], stdin: true));
        var error = await client.OpenAsync(("streamType", "error"));
        var stdin = await client.OpenAsync(("streamType", "stdin"));
        var stdout = await client.OpenAsync(("streamType", "stdout"));
        await client.SendGoAwayAsync(lastGood: 0);
        var output = stdout.ReadAllTextAsync(Wait);
        await stdin.WriteAsync("still here\n");
        await stdin.CloseAsync();
        Assert.Equal("still here\n", await output);
        Assert.Equal(0, new ExecResult("", "", await error.ReadAllTextAsync(Wait)).ExitCode());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Twenty_megabytes_each_way_through_cat(bool strict)
    {
        var mode = strict ? FlowMode.Strict : FlowMode.Spdystream;
        await using var t = await TestServer.StartAsync();
        // A small window in strict mode: the server must wait for our WINDOW_UPDATEs hundreds of times.
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["cat"], stdin: true), mode, window: 16 * 1024);
        var error = await client.OpenAsync(("streamType", "error"));
        var stdin = await client.OpenAsync(("streamType", "stdin"));
        var stdout = await client.OpenAsync(("streamType", "stdout"));
        var payload = RandomNumberGenerator.GetBytes(20 * 1024 * 1024);
        var echoed = stdout.ReadAllAsync(TimeSpan.FromSeconds(120));
        for (int at = 0; at < payload.Length; at += 1024 * 1024)
            await stdin.WriteAsync(payload.AsMemory(at, 1024 * 1024));
        await stdin.CloseAsync();
        var back = await echoed;
        Assert.Equal(payload.Length, back.Length);
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(back));
        Assert.Equal(0, new ExecResult("", "", await error.ReadAllTextAsync(Wait)).ExitCode());
        var updates = client.Frames.Count(f => f.Type == "WINDOW_UPDATE");
        if (mode == FlowMode.Strict)
        {
            Assert.Equal(0, client.FlowViolations);
            // The server reopened our sending window as cat took the input: 20 MiB through 64 KiB windows.
            Assert.True(updates > 300, $"{updates} WINDOW_UPDATEs");
            Assert.All(client.Frames.Where(f => f.Type == "DATA"), f => Assert.True(f.Length <= 16 * 1024, $"a {f.Length}-byte frame in a 16 KiB window"));
        }
        else
        {
            // Updates are sent (harmless to spdystream, which ignores them); the server never waited for ours.
            Assert.True(updates > 0);
        }
    }

    [Fact]
    public async Task An_idle_connection_is_closed_and_its_process_killed()
    {
        await using var t = await TestServer.StartAsync(new StreamingOptions { IdleTimeout = TimeSpan.FromSeconds(1), Linger = TimeSpan.FromSeconds(1) });
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["sleep", "60"]));
        var error = await client.OpenAsync(("streamType", "error"));
        await client.OpenAsync(("streamType", "stdout"));
        await ExecTests.WaitForAsync(() => !t.Containers.ExecPids.IsEmpty);
        await client.GoAway.WaitAsync(Wait);
        await client.Closed.WaitAsync(Wait);
        await ExecTests.WaitForAsync(() => t.Containers.ExecPids.All(Gone));
    }

    [Fact]
    public async Task A_client_that_does_not_open_its_streams_in_time_is_dropped()
    {
        await using var t = await TestServer.StartAsync(new StreamingOptions { CreationTimeout = TimeSpan.FromSeconds(1), Linger = TimeSpan.FromSeconds(1) });
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["echo", "never"], stdin: true));
        await client.OpenAsync(("streamType", "error"));
        await client.OpenAsync(("streamType", "stdout"));
        await client.Closed.WaitAsync(Wait);
        Assert.Empty(t.Containers.ExecPids);
        Assert.Contains(t.Log.Lines, l => l.Message.Contains("did not open its streams within 1 s"));
    }

    [Fact]
    public async Task Stopping_the_server_ends_its_sessions_and_their_processes()
    {
        var t = await TestServer.StartAsync();
        await using var client = await TestServer.ConnectAsync(t.ExecUrl(["sleep", "60"]));
        await client.OpenAsync(("streamType", "error"));
        await client.OpenAsync(("streamType", "stdout"));
        await ExecTests.WaitForAsync(() => !t.Containers.ExecPids.IsEmpty);
        await t.DisposeAsync().AsTask().WaitAsync(Wait);
        await client.Closed.WaitAsync(Wait);
        Assert.All(t.Containers.ExecPids, pid => Assert.True(Gone(pid)));
    }

    internal static bool Gone(int pid)
    {
        try
        {
            // A zombie counts as gone: it holds no descriptors and its parent reaps it.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return true;
        }
    }

    internal static int OpenDescriptors() => Directory.GetFiles("/proc/self/fd").Length;

    private static async Task WaitForFrameAsync(SpdyTestClient client, Func<ReceivedFrame, bool> match) =>
        await ExecTests.WaitForAsync(() => client.Frames.Any(match));
}
