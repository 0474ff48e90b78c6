using System.Net.Sockets;
using System.Text;

namespace Crid.Runtime.Tests;

/// <summary>
/// What the streaming server will use: conmon's attach socket (stdin in, output out, one byte of
/// stream id before each packet) and its ctl fifo (terminal resize).
/// </summary>
public class EndpointTests
{
    private static async Task<Socket> AttachAsync(string path)
    {
        Assert.True(Encoding.UTF8.GetByteCount(path) < 108, $"{path} is too long for sun_path");
        var socket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
        return socket;
    }

    private static async Task<string> ReceiveUntilAsync(Socket socket, string expected, byte stream)
    {
        var text = new StringBuilder();
        var buffer = new byte[8192];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!text.ToString().Contains(expected, StringComparison.Ordinal))
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            Assert.True(n > 0, "conmon closed the attach socket; got: " + text);
            if (buffer[0] == stream)
            {
                text.Append(Encoding.UTF8.GetString(buffer, 1, n - 1));
            }
        }

        return text.ToString();
    }

    [Fact]
    public async Task Stdin_goes_in_and_output_comes_out_through_the_attach_socket()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        string bundle = host.Bundle("att", ["sh", "-c", "read x; echo got:$x; sleep 1000"]);
        await rt.CreateAsync(host.Request("att", bundle) with { Stdin = true }, RuntimeHost.Timeout());
        await rt.StartAsync("att", RuntimeHost.Timeout());
        var endpoints = rt.Endpoints("att");
        Assert.True(File.Exists(endpoints.ControlFifo));
        using var socket = await AttachAsync(endpoints.AttachSocket);
        await socket.SendAsync("hello\n"u8.ToArray(), SocketFlags.None);
        await ReceiveUntilAsync(socket, "got:hello", stream: 2);
        Assert.Contains("stdout F got:hello", File.ReadAllText(host.LogPath("att")));
    }

    [Fact]
    public async Task A_terminal_container_resizes_through_the_ctl_fifo()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        string bundle = host.Bundle("tty", ["sh", "-c", "read x; stty size; echo got:$x; sleep 1000"], terminal: true);
        await rt.CreateAsync(host.Request("tty", bundle, terminal: true) with { Stdin = true }, RuntimeHost.Timeout());
        await rt.StartAsync("tty", RuntimeHost.Timeout());
        var endpoints = rt.Endpoints("tty");
        using var socket = await AttachAsync(endpoints.AttachSocket);
        Assert.True(Crid.Linux.Fifo.TryWrite(endpoints.ControlFifo, "1 40 100\n"));
        await Task.Delay(200);
        await socket.SendAsync("hi\n"u8.ToArray(), SocketFlags.None);
        string text = await ReceiveUntilAsync(socket, "got:hi", stream: 2);
        Assert.Contains("40 100", text);
        Assert.Contains("\r\n", text); // a terminal's output
    }
}
