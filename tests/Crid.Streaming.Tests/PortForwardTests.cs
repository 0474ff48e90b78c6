using System.Net;
using System.Net.Sockets;
using Crid.Linux;
using Crid.Streaming.Tests.Client;
using Crid.Streaming.Tests.Host;

namespace Crid.Streaming.Tests;

/// <summary>Port-forward over SPDY: stream pairs, errors on the error stream, and a real pod network namespace.</summary>
public sealed class PortForwardTests
{
    private static readonly string[] Protocol = ["portforward.k8s.io"];

    private static async Task<SpdyTestClient> ConnectAsync(TestServer t) => await TestServer.ConnectAsync(t.PortForwardUrl(), protocols: Protocol);

    [Fact]
    public async Task Both_ways_with_half_close_to_an_echo_server()
    {
        await using var t = await TestServer.StartAsync();
        using var echo = EchoServer.Start();
        await using var client = await ConnectAsync(t);
        var (data, error) = await PortForwardClient.ExchangeAsync(client, echo.Port, 1, "hello through the pod\n");
        Assert.Equal("hello through the pod\n", data);
        Assert.Equal("", error);
        // The connection stays for more forwards.
        (data, error) = await PortForwardClient.ExchangeAsync(client, echo.Port, 2, "again\n");
        Assert.Equal("again\n", data);
    }

    [Fact]
    public async Task A_port_nobody_listens_on_is_reported_on_the_error_stream()
    {
        await using var t = await TestServer.StartAsync();
        await using var client = await ConnectAsync(t);
        int port = PodHttpServer.HostFreePort();
        var (data, error) = await PortForwardClient.ExchangeAsync(client, port, 7, "anyone?");
        Assert.Equal("", data);
        Assert.StartsWith($"error forwarding port {port} to pod {TestNetworks.Sandbox}", error);
        Assert.Contains("refused", error, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_sandbox_that_stopped_since_is_reported_on_the_error_stream()
    {
        await using var t = await TestServer.StartAsync();
        using var echo = EchoServer.Start();
        await using var client = await ConnectAsync(t);
        t.Networks.Ready = false;
        var (_, error) = await PortForwardClient.ExchangeAsync(client, echo.Port, 1, "x");
        Assert.Contains("is not ready", error);
    }

    [Theory]
    [InlineData(null, "data")]
    [InlineData("0", "data")]
    [InlineData("65536", "data")]
    [InlineData("http", "data")]
    [InlineData("80", null)]
    [InlineData("80", "stdin")]
    public async Task Streams_without_a_valid_port_and_type_are_refused(string? port, string? type)
    {
        await using var t = await TestServer.StartAsync();
        await using var client = await ConnectAsync(t);
        var headers = new List<KeyValuePair<string, string>> { new("requestID", "1") };
        if (port is not null)
            headers.Add(new("port", port));
        if (type is not null)
            headers.Add(new("streamType", type));
        var stream = await client.OpenNoWaitAsync(headers);
        await stream.FinReceived.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(3u, stream.ResetStatus);
        await client.PingAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Old_clients_without_request_ids_pair_by_stream_id()
    {
        await using var t = await TestServer.StartAsync();
        using var echo = EchoServer.Start();
        await using var client = await ConnectAsync(t);
        var port = echo.Port.ToString();
        var error = await client.OpenAsync(("streamType", "error"), ("port", port));
        var data = await client.OpenAsync(("streamType", "data"), ("port", port));
        Assert.Equal(error.Id + 2, data.Id);
        var back = data.ReadAllTextAsync();
        await data.WriteAsync("old style");
        await data.CloseAsync();
        Assert.Equal("old style", await back);
    }

    [Fact]
    public async Task A_second_data_stream_for_a_request_is_refused_and_reported()
    {
        await using var t = await TestServer.StartAsync(new StreamingOptions { CreationTimeout = TimeSpan.FromSeconds(2) });
        await using var client = await ConnectAsync(t);
        var error = await client.OpenAsync(("streamType", "error"), ("port", "80"), ("requestID", "5"));
        var errorText = error.ReadAllTextAsync();
        await client.OpenAsync(("streamType", "error"), ("port", "80"), ("requestID", "6"));
        // Request 5 gets a data stream only after a duplicate error stream: that one is refused.
        var duplicate = await client.OpenNoWaitAsync([new("streamType", "error"), new("port", "80"), new("requestID", "5")]);
        await duplicate.FinReceived.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(8u, duplicate.ResetStatus);
        // Never completed: the pair times out, with a word on its error stream.
        Assert.Contains("error stream already assigned", await errorText);
        Assert.Contains("timed out waiting for streams of request 5", await errorText);
    }

    [Fact]
    public async Task Twenty_parallel_connections_to_an_http_server_in_a_pod_network_namespace()
    {
        Assert.True(Environment.UserName == "root" || Environment.GetEnvironmentVariable("USER") == "root", "needs root: setns into a pod's network namespace");
        var dir = Directory.CreateTempSubdirectory("crid-pf-ns-").FullName;
        var pod = PodNamespaces.Create(new PodNamespacesRequest
        {
            NamespacesDir = dir,
            Namespaces = [new NamespaceRequest("net", Host: false)],
            LoopbackUp = true,
        });
        try
        {
            var netns = pod.Get("net")!.Path;
            var page = "<h1>served from inside the pod</h1>\n" + new string('x', 100_000);
            using var http = await PodHttpServer.StartAsync(netns, page);
            Assert.False(PodHttpServer.HostListens(http.Port), "the host must not have the pod's port: the forward would not prove the namespace");
            await using var t = await TestServer.StartAsync();
            t.Networks.NetNamespace = netns;
            await using var client = await ConnectAsync(t);
            var answers = await Task.WhenAll(Enumerable.Range(1, 20).Select(i => PortForwardClient.GetAsync(client, http.Port, i)));
            Assert.All(answers, a =>
            {
                Assert.Equal("", a.Error);
                Assert.StartsWith("HTTP/1.", a.Data);
                Assert.Contains(" 200 OK", a.Data);
                Assert.EndsWith(page, a.Data);
            });
            Assert.Equal(0, client.FlowViolations);
        }
        finally
        {
            foreach (var pin in pod.Pins)
                pin.Remove();
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Echoes each connection back until its client half-closes, then closes.</summary>
    private sealed class EchoServer : IDisposable
    {
        private readonly TcpListener _listener;

        private EchoServer(TcpListener listener) => _listener = listener;

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public static EchoServer Start()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var server = new EchoServer(listener);
            _ = Task.Run(server.AcceptLoopAsync);
            return server;
        }

        private async Task AcceptLoopAsync()
        {
            try
            {
                while (true)
                {
                    var socket = await _listener.AcceptSocketAsync();
                    _ = Task.Run(async () =>
                    {
                        using (socket)
                        {
                            var buffer = new byte[4096];
                            int n;
                            while ((n = await socket.ReceiveAsync(buffer)) > 0)
                                await socket.SendAsync(buffer.AsMemory(0, n));
                            socket.Shutdown(SocketShutdown.Send);
                        }
                    });
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }

        public void Dispose() => _listener.Stop();
    }
}
