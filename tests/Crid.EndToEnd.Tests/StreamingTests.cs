using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Crid.Streaming.Tests.Client;
using Crid.Streaming.Tests.Host;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>The daemon's streaming server: port-forward into a real pod, its configuration, and what a client leaves behind.</summary>
public sealed class StreamingTests
{
    private static readonly string[] PortForward = ["portforward.k8s.io"];

    [Fact]
    public async Task Port_forward_into_a_pod_with_twenty_parallel_connections()
    {
        await using var d = await DaemonProcess.StartAsync();
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("pf") })).PodSandboxId;
        var netns = await NetPin(d, id);
        var page = "<h1>crid port-forward</h1>\n" + new string('p', 200_000);
        using var http = await PodHttpServer.StartAsync(netns, page);
        Assert.False(PodHttpServer.HostListens(http.Port), "the host must not have the pod's port: the forward would not prove the namespace");

        // A unique prefix of the id, as crictl users type it.
        var url = (await d.Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = id[..12], Port = { http.Port } })).Url;
        Assert.StartsWith("http://127.0.0.1:", url);
        var answer = await SpdyTestClient.UpgradeAsync(url, PortForward);
        Assert.Equal(101, answer.Status);
        await using var client = answer.Client!;
        var answers = await Task.WhenAll(Enumerable.Range(1, 20).Select(i => PortForwardClient.GetAsync(client, http.Port, i)));
        Assert.All(answers, a =>
        {
            Assert.Equal("", a.Error);
            Assert.Contains(" 200 OK", a.Data);
            Assert.EndsWith(page, a.Data);
        });

        // A forwarded connection whose client vanishes in the middle leaves no socket in the daemon.
        // Counted once warm: the namespace threads keep their own namespaces open from first use.
        var before = DescriptorTargets(d.Process.Id);
        var error = await client.OpenAsync(("streamType", "error"), ("port", http.Port.ToString()), ("requestID", "99"));
        var data = await client.OpenAsync(("streamType", "data"), ("port", http.Port.ToString()), ("requestID", "99"));
        await data.WriteAsync("GET /index.html HTTP/1.0\r\n");
        client.Vanish();
        // The vanished connection's own socket goes too: one fewer than before.
        await WaitForAsync(() => DescriptorTargets(d.Process.Id).Count < before.Count,
            () => $"daemon descriptors now: {string.Join(" ", DescriptorTargets(d.Process.Id))}; before: {string.Join(" ", before)}");

        // A stopped pod takes no new forwards.
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
        var stopped = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = id }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, stopped.StatusCode);
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        Assert.DoesNotContain("crashed", d.Stderr);
    }

    [Fact]
    public async Task The_streaming_address_and_port_are_configurable_and_a_taken_port_stops_the_start()
    {
        int port = PodHttpServer.HostFreePort();
        await using (var d = await DaemonProcess.StartAsync("--streaming-address", "127.0.0.1", "--streaming-port", port.ToString()))
        {
            var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("cfg") })).PodSandboxId;
            var url = (await d.Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = id })).Url;
            Assert.StartsWith($"http://127.0.0.1:{port}/portforward/", url);
            Assert.Contains($"streaming server listening on http://127.0.0.1:{port}/", d.Stderr);
            var exec = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.ExecAsync(new ExecRequest { ContainerId = "none", Cmd = { "sh" }, Stdin = true }).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, exec.StatusCode);
            await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        }

        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        int busy = ((IPEndPoint)taken.LocalEndPoint!).Port;
        var dir = Directory.CreateTempSubdirectory("crid-e2e-").FullName;
        var runtimeRoot = DaemonProcess.ShortRuntimeRoot();
        try
        {
            var stderr = new System.Text.StringBuilder();
            var process = DaemonProcess.Launch([
                "--listen", Path.Combine(dir, "crid.sock"), "--state-dir", Path.Combine(dir, "state"), "--namespaces-dir", Path.Combine(dir, "ns"),
                "--config", "/dev/null", "--cni-conf-dir", Path.Combine(dir, "net.d"), "--streaming-port", busy.ToString(),
                "--runtime-root", runtimeRoot], stderr);
            Assert.True(process.WaitForExit(20_000));
            // Without a timeout it also waits for the last of stderr to be read.
            process.WaitForExit();
            Assert.Equal(1, process.ExitCode);
            lock (stderr)
                Assert.Contains($"crid: streaming server: cannot listen on 127.0.0.1:{busy}", stderr.ToString());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
            await Cleanup.RemoveRuntimeRootAsync(runtimeRoot);
        }
    }

    private static async Task<string> NetPin(DaemonProcess d, string id)
    {
        var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true });
        using var info = JsonDocument.Parse(status.Info["info"]);
        return info.RootElement.GetProperty("pins").GetProperty("net").GetString()!;
    }

    private static List<string> DescriptorTargets(int pid) =>
        Directory.GetFiles($"/proc/{pid}/fd").Select(f =>
        {
            try { return new FileInfo(f).LinkTarget ?? "?"; } catch (IOException) { return "gone"; }
        }).Order().ToList();

    private static async Task WaitForAsync(Func<bool> condition, Func<string> what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(15))
                throw new TimeoutException(what());
            await Task.Delay(50);
        }
    }
}
