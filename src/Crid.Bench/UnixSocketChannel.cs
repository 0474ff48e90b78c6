using System.Net.Sockets;
using Grpc.Net.Client;

namespace Crid.Bench;

/// <summary>
/// A Grpc.Net.Client channel to crid's Unix socket, as kubelet and crictl reach it. The end-to-end
/// tests compile this same file, so the benchmark and the tests talk to the daemon the same way.
/// </summary>
internal static class UnixSocketChannel
{
    public static GrpcChannel Create(string socketPath) =>
        GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectCallback = async (_, ct) =>
                {
                    var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                        return new NetworkStream(socket, ownsSocket: true);
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                },
            },
        });
}
