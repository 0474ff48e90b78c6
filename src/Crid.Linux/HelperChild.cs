using System.Runtime.InteropServices;

namespace Crid.Linux;

/// <summary>
/// A throwaway child created with clone(2) straight into new namespaces, running libc's pause().
/// A .NET process is multithreaded, so unshare(CLONE_NEWUSER) is refused (EINVAL) for it;
/// a fresh child made by clone() is single-threaded and may own every new namespace.
/// </summary>
internal sealed unsafe class HelperChild : IDisposable
{
    private const int StackSize = 16 * 1024;
    private const int CLONE_VM = 0x100;

    // A native function, so the child never runs managed code: it is a copy of the daemon
    // (signal handlers, descriptors) and must do nothing but wait for SIGKILL.
    private static readonly nint PauseFn = NativeLibrary.GetExport(NativeLibrary.Load(Interop.Libc), "pause");

    private void* _stack;

    private HelperChild(int pid, void* stack)
    {
        Pid = pid;
        _stack = stack;
    }

    /// <summary>Tests/benchmarks only: copy the address space (fork-like) instead of sharing it.</summary>
    internal static bool ShareMemory { get; set; } = true;

    public int Pid { get; }

    internal static HelperChild Start(int flags, string? type)
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
        byte* all = stackalloc byte[Interop.SigsetSize];
        byte* old = stackalloc byte[Interop.SigsetSize];
        Interop.Sigfillset(all);
        Interop.PthreadSigmask(Interop.SIG_SETMASK, all, old);
        int pid = Interop.Clone(PauseFn, top, flags | Interop.SIGCHLD | (ShareMemory ? CLONE_VM : 0), null);
        Interop.PthreadSigmask(Interop.SIG_SETMASK, old, null);
        if (pid < 0)
        {
            var error = Errors.Last("clone", type, "clone", null);
            NativeMemory.Free(stack);
            throw error;
        }

        return new HelperChild(pid, stack);
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
