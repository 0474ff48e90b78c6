using System.Net.Sockets;

namespace Crid.Linux;

/// <summary>Sockets that belong to a pod's network namespace.</summary>
public static class NetNamespaceSockets
{
    /// <summary>
    /// A socket created inside the network namespace pinned at <paramref name="netnsPath"/>. A
    /// socket keeps the namespace it was created in for its whole life (socket(7): its addresses,
    /// routes and ports are that namespace's), so only the creation needs the setns(2) thread;
    /// connecting, reading and writing then happen anywhere. Throws <see cref="SyscallException"/>
    /// when the namespace cannot be entered (a pin that is gone).
    /// </summary>
    public static Socket Create(string netnsPath, AddressFamily family, SocketType type, ProtocolType protocol)
    {
        ArgumentException.ThrowIfNullOrEmpty(netnsPath);
        Socket? socket = null;
        NamespaceThreads.Run([netnsPath, null, null], () => socket = new Socket(family, type, protocol));
        return socket!;
    }
}
