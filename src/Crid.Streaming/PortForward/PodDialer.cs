using System.Net;
using System.Net.Sockets;
using Crid.Linux;

namespace Crid.Streaming.PortForward;

/// <summary>Connects to a port on a pod's loopback, from inside its network namespace.</summary>
internal static class PodDialer
{
    /// <summary>
    /// 127.0.0.1, then ::1 when IPv4 is refused (a server may listen on one of them only), as
    /// containerd dials "localhost". <paramref name="netns"/> null means the host's network.
    /// </summary>
    public static async Task<Socket> ConnectAsync(string? netns, int port, TimeSpan timeout, CancellationToken cancel)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        limit.CancelAfter(timeout);
        var failures = new List<string>(2);
        foreach (var address in new[] { IPAddress.Loopback, IPAddress.IPv6Loopback })
        {
            Socket socket = netns is null
                ? new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
                : NetNamespaceSockets.Create(netns, address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.NoDelay = true;
                await socket.ConnectAsync(new IPEndPoint(address, port), limit.Token).ConfigureAwait(false);
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                failures.Add($"{new IPEndPoint(address, port)}: {e.Message}");
                if (e.SocketErrorCode is not (SocketError.ConnectionRefused or SocketError.AddressNotAvailable
                    or SocketError.AddressFamilyNotSupported or SocketError.NetworkUnreachable))
                    break;
            }
            catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
            {
                socket.Dispose();
                throw new IOException($"connecting to port {port} timed out after {timeout.TotalSeconds:0.#} s");
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw new IOException($"cannot connect to port {port} in the pod's network namespace: {string.Join("; ", failures)}");
    }
}
