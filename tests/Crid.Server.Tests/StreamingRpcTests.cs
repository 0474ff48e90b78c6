using Crid.Bench;
using Crid.Core.Configuration;
using Crid.Core.Errors;
using Crid.Server;
using Crid.Server.Http2;
using Crid.Streaming;
using Crid.Streaming.Tests.Client;
using Crid.Streaming.Tests.Host;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Runtime.V1;

namespace Crid.Tests.Streaming;

/// <summary>Exec, Attach and PortForward through the real CRI services on a Unix socket, and their URLs.</summary>
public sealed class StreamingRpcTests
{
    [Fact]
    public async Task Exec_hands_out_a_url_that_runs_the_command()
    {
        await using var s = await CriServer.StartAsync(new HostProcessStreams());
        var url = (await s.Runtime.ExecAsync(new ExecRequest { ContainerId = HostProcessStreams.Container, Cmd = { "echo", "via the RPC" }, Stdout = true })).Url;
        Assert.StartsWith(s.Streaming.BaseUrl + "exec/", url);
        Assert.StartsWith("http://127.0.0.1:", url);
        var answer = await SpdyTestClient.UpgradeAsync(url, ["v4.channel.k8s.io"]);
        await using var client = answer.Client!;
        var result = await ExecClient.RunAsync(client, stdin: false, stdout: true, stderr: false);
        Assert.Equal("via the RPC\n", result.Stdout);
        Assert.Equal(0, result.ExitCode());
    }

    [Fact]
    public async Task Attach_hands_out_a_url()
    {
        var containers = new HostProcessStreams();
        using var main = containers.StartMain("main", "/bin/sh", "-c", "echo attached");
        await using var s = await CriServer.StartAsync(containers);
        var url = (await s.Runtime.AttachAsync(new AttachRequest { ContainerId = "main", Stdout = true })).Url;
        Assert.StartsWith(s.Streaming.BaseUrl + "attach/", url);
    }

    [Theory]
    [InlineData("", true, true, false, false, "container_id: required")]
    [InlineData("host-container", true, true, true, true, "stderr: must be false with tty")]
    [InlineData("host-container", false, false, false, false, "one of stdin, stdout or stderr must be set")]
    public async Task Bad_exec_and_attach_requests_name_the_field(string id, bool stdin, bool stdout, bool stderr, bool tty, string message)
    {
        await using var s = await CriServer.StartAsync(new HostProcessStreams());
        var exec = await Assert.ThrowsAsync<RpcException>(async () => await s.Runtime.ExecAsync(new ExecRequest
        {
            ContainerId = id, Cmd = { "true" }, Stdin = stdin, Stdout = stdout, Stderr = stderr, Tty = tty,
        }));
        Assert.Equal(StatusCode.InvalidArgument, exec.StatusCode);
        Assert.Contains(message, exec.Status.Detail);
        var attach = await Assert.ThrowsAsync<RpcException>(async () => await s.Runtime.AttachAsync(new AttachRequest
        {
            ContainerId = id, Stdin = stdin, Stdout = stdout, Stderr = stderr, Tty = tty,
        }));
        Assert.Equal(StatusCode.InvalidArgument, attach.StatusCode);
        Assert.Contains(message, attach.Status.Detail);
        var noCommand = await Assert.ThrowsAsync<RpcException>(async () => await s.Runtime.ExecAsync(new ExecRequest { ContainerId = "x", Stdout = true }));
        Assert.Equal(StatusCode.InvalidArgument, noCommand.StatusCode);
        Assert.StartsWith("cmd:", noCommand.Status.Detail);
    }

    [Fact]
    public async Task Without_a_container_lifecycle_every_container_is_unknown()
    {
        await using var s = await CriServer.StartAsync(containers: null);
        var exec = await Assert.ThrowsAsync<RpcException>(async () => await s.Runtime.ExecAsync(new ExecRequest { ContainerId = "abc", Cmd = { "sh" }, Stdin = true, Tty = true }));
        Assert.Equal(StatusCode.NotFound, exec.StatusCode);
        Assert.Equal("container \"abc\" not found", exec.Status.Detail);
        var attach = await Assert.ThrowsAsync<RpcException>(async () => await s.Runtime.AttachAsync(new AttachRequest { ContainerId = "abc", Stdout = true }));
        Assert.Equal(StatusCode.NotFound, attach.StatusCode);
        Assert.Equal(0, s.Streaming.Tokens.Count);
    }

    [Fact]
    public async Task Port_forward_needs_a_sandbox_and_real_ports()
    {
        await using var s = await CriServer.StartAsync(new HostProcessStreams());
        var missing = await Assert.ThrowsAsync<RpcException>(async () => await s.Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = "nope", Port = { 80 } }));
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        var empty = await Assert.ThrowsAsync<RpcException>(async () => await s.Runtime.PortForwardAsync(new PortForwardRequest()));
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
        Assert.StartsWith("pod_sandbox_id:", empty.Status.Detail);
        var port = await Assert.ThrowsAsync<RpcException>(async () => await s.Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = "nope", Port = { 80, 0 } }));
        Assert.Equal(StatusCode.InvalidArgument, port.StatusCode);
        Assert.StartsWith("port[1]:", port.Status.Detail);
        Assert.Equal(0, s.Streaming.Tokens.Count);
    }

    [Fact]
    public void A_full_token_cache_is_resource_exhausted() =>
        Assert.Equal(StatusCode.ResourceExhausted, ErrorInterceptor.ToStatus(new ResourceExhaustedException("full")).StatusCode);

    /// <summary>The daemon's own service wiring (AddCriServices) on a Unix socket, with its streaming server started.</summary>
    internal sealed class CriServer : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly string _dir;

        private CriServer(WebApplication app, string dir, GrpcChannel channel)
        {
            _app = app;
            _dir = dir;
            Channel = channel;
            Runtime = new RuntimeService.RuntimeServiceClient(channel);
            Streaming = app.Services.GetRequiredService<StreamingServer>();
        }

        public GrpcChannel Channel { get; }

        public string Socket => Path.Combine(_dir, "crid.sock");

        public RuntimeService.RuntimeServiceClient Runtime { get; }

        public StreamingServer Streaming { get; }

        public static async Task<CriServer> StartAsync(IContainerStreams? containers)
        {
            var dir = Path.Combine(Path.GetTempPath(), "crid-rpc-" + Guid.NewGuid().ToString("N")[..12]);
            Directory.CreateDirectory(dir);
            var options = new CridOptions
            {
                Listen = Path.Combine(dir, "crid.sock"),
                StateDir = Path.Combine(dir, "state"),
                NamespacesDir = Path.Combine(dir, "ns"),
                CniConfDir = Path.Combine(dir, "net.d"),
                // The container runtime's folders are made when the services are built: never the host's.
                RuntimeRoot = Path.Combine(dir, "rt"),
            };
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = dir });
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(options.Listen, l =>
            {
                l.Protocols = HttpProtocols.Http2;
                l.UseAuthorityRewrite();
            }));
            if (containers is not null)
                builder.Services.AddSingleton(containers);
            builder.Services.AddCriServices(options);
            var app = builder.Build();
            app.MapCriServices();
            await app.Services.GetRequiredService<StreamingServer>().StartAsync();
            await app.StartAsync();
            return new CriServer(app, dir, UnixSocketChannel.Create(options.Listen));
        }

        public async ValueTask DisposeAsync()
        {
            Channel.Dispose();
            await Streaming.DisposeAsync();
            await _app.StopAsync();
            await _app.DisposeAsync();
            Directory.Delete(_dir, recursive: true);
        }
    }
}
