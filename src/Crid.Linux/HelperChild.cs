using System.Runtime.InteropServices;

namespace Crid.Linux;

/// <summary>
/// A throwaway child created with clone(2) straight into new namespaces, running libc's pause().
/// A .NET process is multithreaded, so unshare(CLONE_NEWUSER) is refused (EINVAL) for it;
/// a fresh child made by clone() is single-threaded and may own every new namespace.
/// </summary>
internal static unsafe class HelperChild
{
    private const int StackSize = 16 * 1024;

    // A native function, so the child never runs managed code: it is a copy of the daemon
    // (signal handlers, descriptors) and must do nothing but wait for SIGKILL.
    private static readonly nint PauseFn = NativeLibrary.GetExport(NativeLibrary.Load(Interop.Libc), "pause");

    internal static int Start(int flags, string? type)
    {
        // Without CLONE_VM the child gets its own copy of our address space, so a stack carved
        // out of this thread's stack is private to the child from the moment clone() returns.
        byte* stack = stackalloc byte[StackSize];
        void* top = (void*)(((nint)stack + StackSize) & ~(nint)15);
        int pid = Interop.Clone(PauseFn, top, flags | Interop.SIGCHLD, null);
        if (pid < 0)
        {
            throw Errors.Last("clone", type, "clone", null);
        }

        return pid;
    }

    internal static void KillAndReap(int pid)
    {
        // SIGKILL only: any other signal would run the daemon's inherited handlers in the child.
        Interop.Kill(pid, Interop.SIGKILL);
        int status;
        while (Interop.Waitpid(pid, &status, 0) < 0 && Marshal.GetLastPInvokeError() == Interop.EINTR)
        {
        }
    }
}
