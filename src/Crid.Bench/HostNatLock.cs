using System.Diagnostics;
using System.Net.Sockets;

namespace Crid.Bench;

/// <summary>
/// One holder at a time, host-wide, of the right to run portmap and clean up after it: the bench's
/// network phase and the tests' networks (CniTests links this file) in every checkout on the machine.
/// portmap's CNI-HOSTPORT-* chains are shared by every user on the host, and each run removes them at
/// its end if it created them and no DNAT rule is left in them; a run in another checkout that was
/// between two pods at that moment then raced portmap re-creating them. The lock is a bound abstract
/// Unix socket: no file to leave behind, and the kernel frees it when the holder exits, even killed.
/// </summary>
internal sealed class HostNatLock : IDisposable
{
    private const string Name = "\0crid-host-nat";
    private readonly Socket _socket;

    private HostNatLock(Socket socket) => _socket = socket;

    /// <summary>Waits until no other process holds the lock, up to <paramref name="timeout"/>.</summary>
    public static HostNatLock Take(TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                socket.Bind(new UnixDomainSocketEndPoint(Name));
                return new HostNatLock(socket);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse && watch.Elapsed < timeout)
            {
                socket.Dispose();
                Thread.Sleep(100);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
    }

    public void Dispose() => _socket.Dispose();
}
