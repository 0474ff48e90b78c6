using Crid.Core.Errors;
using Crid.Streaming.Tests.Client;
using Crid.Streaming.Tests.Host;

namespace Crid.Streaming.Tests;

/// <summary>The HTTP side: tokens, the upgrade to SPDY/3.1 and the subprotocol handshake.</summary>
public sealed class UpgradeTests
{
    private static readonly string[] V4 = ["v4.channel.k8s.io"];

    [Fact]
    public async Task A_token_is_good_for_one_connection_only()
    {
        await using var t = await TestServer.StartAsync();
        var url = t.ExecUrl(["true"]);
        var first = await SpdyTestClient.UpgradeAsync(url, V4);
        Assert.Equal(101, first.Status);
        await first.Client!.DisposeAsync();
        var second = await SpdyTestClient.UpgradeAsync(url, V4);
        Assert.Equal(404, second.Status);
        Assert.Contains("unknown, used or expired", second.Body);
    }

    [Fact]
    public async Task A_token_used_after_its_minute_is_refused()
    {
        var time = new ManualTime();
        await using var t = await TestServer.StartAsync(time: time);
        var late = t.ExecUrl(["true"]);
        var inTime = t.ExecUrl(["true"]);
        time.Advance(TimeSpan.FromSeconds(59));
        var answer = await SpdyTestClient.UpgradeAsync(inTime, V4);
        Assert.Equal(101, answer.Status);
        await answer.Client!.DisposeAsync();
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(404, (await SpdyTestClient.UpgradeAsync(late, V4)).Status);
    }

    [Fact]
    public async Task Unknown_tokens_paths_kinds_and_methods_are_refused()
    {
        await using var t = await TestServer.StartAsync();
        var baseUrl = t.Server.BaseUrl.ToString();
        Assert.Equal(404, (await SpdyTestClient.UpgradeAsync(baseUrl + "exec/AAAAAAAAAAAAAAAAAAAAAA", V4)).Status);
        Assert.Equal(404, (await SpdyTestClient.UpgradeAsync(baseUrl + "shell/x", V4)).Status);
        Assert.Equal(404, (await SpdyTestClient.UpgradeAsync(baseUrl + "exec/a/b", V4)).Status);
        // An exec token at the attach endpoint is spent, not honoured.
        var exec = t.ExecUrl(["true"]);
        Assert.Equal(404, (await SpdyTestClient.UpgradeAsync(exec.Replace("/exec/", "/attach/"), V4)).Status);
        Assert.Equal(404, (await SpdyTestClient.UpgradeAsync(exec, V4)).Status);
        Assert.Equal(405, (await SpdyTestClient.UpgradeAsync(t.ExecUrl(["true"]), V4, method: "PUT")).Status);
        var get = await SpdyTestClient.UpgradeAsync(t.ExecUrl(["true"]), V4, method: "GET");
        Assert.Equal(101, get.Status);
        await get.Client!.DisposeAsync();
    }

    [Fact]
    public async Task The_handshake_needs_the_upgrade_and_a_common_protocol()
    {
        await using var t = await TestServer.StartAsync();
        var noUpgrade = await SpdyTestClient.UpgradeAsync(t.ExecUrl(["true"]), V4, upgradeHeaders: false);
        Assert.Equal(400, noUpgrade.Status);
        Assert.Contains("SPDY/3.1", noUpgrade.Body);

        var noProtocol = await SpdyTestClient.UpgradeAsync(t.ExecUrl(["true"]), []);
        Assert.Equal(400, noProtocol.Status);
        Assert.Contains("X-Stream-Protocol-Version is required", noProtocol.Body);

        var unknown = await SpdyTestClient.UpgradeAsync(t.ExecUrl(["true"]), ["v9.channel.k8s.io", "portforward.k8s.io"]);
        Assert.Equal(403, unknown.Status);
        Assert.Equal(["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"],
            unknown.Headers["x-accepted-stream-protocol-versions"].SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries)));

        var forward = await SpdyTestClient.UpgradeAsync(t.PortForwardUrl(), ["v4.channel.k8s.io"]);
        Assert.Equal(403, forward.Status);
        var forwardOk = await SpdyTestClient.UpgradeAsync(t.PortForwardUrl(), ["portforward.k8s.io"]);
        Assert.Equal(101, forwardOk.Status);
        Assert.Equal("portforward.k8s.io", forwardOk.Header("X-Stream-Protocol-Version"));
        await forwardOk.Client!.DisposeAsync();
    }

    [Theory]
    [InlineData("::1", "http://[::1]:")]
    [InlineData("0.0.0.0", "http://127.0.0.1:")]
    public async Task Urls_name_an_address_a_local_client_can_reach(string listen, string prefix)
    {
        await using var t = await TestServer.StartAsync(new StreamingOptions { Address = System.Net.IPAddress.Parse(listen) });
        var url = t.ExecUrl(["echo", "ok"]);
        Assert.StartsWith(prefix, url);
        await using var client = await TestServer.ConnectAsync(url);
        Assert.Equal("ok\n", (await ExecClient.RunAsync(client, false, true, false)).Stdout);
    }

    [Fact]
    public void Tokens_are_unguessable_single_use_and_bounded()
    {
        var time = new ManualTime();
        var tokens = new StreamingTokens(TimeSpan.FromMinutes(1), capacity: 3, time);
        var request = new PortForwardStreamRequest("p");
        var issued = new[] { tokens.Add(request), tokens.Add(request), tokens.Add(request) };
        Assert.All(issued, token => Assert.Matches("^[A-Za-z0-9_-]{22}$", token));
        Assert.Equal(3, issued.Distinct().Count());
        var full = Assert.Throws<ResourceExhaustedException>(() => tokens.Add(request));
        Assert.Contains("3 streaming requests", full.Message);
        Assert.Same(request, tokens.Take(issued[0]));
        Assert.Null(tokens.Take(issued[0]));
        tokens.Add(request);
        // Expired ones make room again.
        time.Advance(TimeSpan.FromMinutes(2));
        tokens.Add(request);
        Assert.Equal(1, tokens.Count);
        Assert.Null(tokens.Take(issued[1]));
    }
}
