using System.Runtime.InteropServices;

namespace Crid.Linux;

internal static unsafe partial class Interop
{
    internal const int EPOLL_CLOEXEC = 0x80000, EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2;
    internal const uint EPOLLIN = 0x1;
    internal const int EFD_CLOEXEC = 0x80000;

    // struct epoll_event is packed on x86_64 (12 bytes: u32 events, u64 data at offset 4) and
    // naturally aligned elsewhere (16 bytes, data at offset 8): callers use these offsets.
    internal static readonly int EpollEventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;
    internal static readonly int EpollDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    [LibraryImport(Libc, EntryPoint = "epoll_create1", SetLastError = true)]
    internal static partial int EpollCreate1(int flags);

    [LibraryImport(Libc, EntryPoint = "epoll_ctl", SetLastError = true)]
    internal static partial int EpollCtl(SafeFd epfd, int op, SafeFd fd, byte* ev);

    [LibraryImport(Libc, EntryPoint = "epoll_wait", SetLastError = true)]
    internal static partial int EpollWait(SafeFd epfd, byte* events, int maxevents, int timeout);

    [LibraryImport(Libc, EntryPoint = "eventfd", SetLastError = true)]
    internal static partial int Eventfd(uint initval, int flags);

    // glibc 2.36 wraps the syscall (Linux 5.3): a pollable fd that is readable once the process exits.
    [LibraryImport(Libc, EntryPoint = "pidfd_open", SetLastError = true)]
    internal static partial int PidfdOpen(int pid, uint flags);
}
