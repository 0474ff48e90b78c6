using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// A connected pair of Unix stream sockets: one end for the daemon as a .NET <see cref="Socket"/>
/// (async through the runtime's own event loop), the other as a plain descriptor for a child.
/// What cri-o's newPipe() makes for conmon's sync and start pipes.
/// </summary>
public static class SocketPair
{
    public static unsafe (Socket Ours, SafeFileHandle Theirs) Create()
    {
        int* fds = stackalloc int[2];
        Interop.CheckIo(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), "socketpair");

        var theirs = new SafeFileHandle(fds[1], ownsHandle: true);
        try
        {
            return (new Socket(new SafeSocketHandle(fds[0], ownsHandle: true)), theirs);
        }
        catch
        {
            close(fds[0]);
            theirs.Dispose();
            throw;
        }
    }
}
