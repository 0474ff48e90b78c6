using System.Runtime.InteropServices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// A throwaway child created with clone(2) straight into new namespaces, running libc's pause().
/// A .NET process is multithreaded, so unshare(CLONE_NEWUSER) is refused (EINVAL) for it;
/// a fresh child made by clone() is single-threaded and may own every new namespace.
/// </summary>
internal sealed unsafe class HelperChild : IDisposable
{
    private const int StackSize = 16 * 1024;

    // A native function, so the child never runs managed code: it is a copy of the daemon
    // (signal handlers, descriptors) and must do nothing but wait for SIGKILL.
    private static readonly nint PauseFn = NativeLibrary.GetExport(NativeLibrary.Load(Interop.Libc), "pause");

    private void* _stack;

    private HelperChild(int pid, void* stack)
    {
        Pid = pid;
        _stack = stack;
    }

    public int Pid { get; }

    /// <param name="flags">The CLONE_NEW* flags of the namespaces to create.</param>
    /// <param name="type">The one namespace type asked for, to name in an error; null for several.</param>
    /// <param name="shareMemory">CLONE_VM (production); false copies the address space, fork-like, to measure.</param>
    internal static HelperChild Start(int flags, string? type, bool shareMemory = true)
    {
        // CLONE_VM: the child shares our memory instead of copying the page tables of a large
        // .NET heap (fork cost, then copy-on-write faults in every daemon thread until it exits).
        // It is safe because the child only ever runs pause() on a stack of its own, which
        // stays allocated until the child has been reaped.
        void* stack = NativeMemory.Alloc(StackSize);
        void* top = (void*)(((nint)stack + StackSize) & ~(nint)15);

        // The child inherits this thread's signal mask. With everything blocked, a signal that
        // reaches it anyway (a terminal's ^C goes to the whole process group) stays pending
        // instead of running the daemon's handlers in the child; SIGKILL cannot be blocked.
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int pid = clone((void*)PauseFn, top, flags | SIGCHLD | (shareMemory ? CLONE_VM : 0), null, null, null, null);
        int errno = Interop.LastErrno;
        pthread_sigmask(SIG_SETMASK, &old, null);
        if (pid < 0)
        {
            NativeMemory.Free(stack);
            throw Interop.Error(errno, "clone", null, "clone", type);
        }

        return new HelperChild(pid, stack);
    }

    internal static void KillAndReap(int pid)
    {
        // SIGKILL only: any other signal would run the daemon's inherited handlers in the child.
        kill(pid, SIGKILL);
        Interop.Reap(pid, 0, out _);
    }

    public void Dispose()
    {
        if (_stack == null)
        {
            return;
        }

        KillAndReap(Pid);
        NativeMemory.Free(_stack);
        _stack = null;
    }
}
