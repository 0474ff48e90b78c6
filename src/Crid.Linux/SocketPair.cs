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
    public static (Socket Ours, SafeFileHandle Theirs) Create() => Create(resetOnClose: false);

    /// <summary>
    /// A pair whose child end reads an error (ECONNRESET), not the end of the stream, once our end
    /// is closed: by a crash of the daemon as well as by <see cref="Socket.Dispose()"/>. One byte
    /// is written from the child's end into ours and never read: the kernel marks the peer of a
    /// Unix stream socket released with unread data reset (net/unix/af_unix.c, unix_release_sock),
    /// and a read on it with nothing queued fails with that error before it sees the end of the
    /// stream. What the child was sent before our end closed is still read first.
    /// </summary>
    /// <remarks>
    /// conmon's start pipe: conmon reads the end of the stream as the start byte (it runs
    /// <c>runc create</c> on whatever the bundle holds) but exits on a read error, so a daemon
    /// that dies before it sends the byte leaves a conmon that runs nothing. A parent death signal
    /// cannot give this: posix_spawn(3) cannot set one, and the kernel would send it when the
    /// spawning thread exits, which may come after the daemon's descriptors are closed.
    /// </remarks>
    public static (Socket Ours, SafeFileHandle Theirs) CreateResetOnClose() => Create(resetOnClose: true);

    private static unsafe (Socket Ours, SafeFileHandle Theirs) Create(bool resetOnClose)
    {
        int* fds = stackalloc int[2];
        Interop.CheckIo(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), "socketpair");
        var theirs = new SafeFileHandle(fds[1], ownsHandle: true);
        try
        {
            // A fresh pair's buffer has room: this write never blocks.
            if (resetOnClose && Interop.CheckIo(Interop.Write(theirs, [0]), "write", "socketpair") != 1)
            {
                throw new IOException("socketpair: a short write of one byte");
            }

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
