using System.Runtime.InteropServices;

namespace Crid.Linux;

internal static partial class Interop
{
    internal const int AF_INET = 2, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0x80000;
    internal const nuint SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914;
    internal const short IFF_UP = 0x1;

    [LibraryImport(Libc, EntryPoint = "socket", SetLastError = true)]
    private static partial int SocketRaw(int domain, int type, int protocol);

    internal static SafeFd Socket(int domain, int type, int protocol) => SafeFd.FromResult(SocketRaw(domain, type, protocol));
}
