using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// The infra process of a pod with its own user namespace. runc joins a pod's namespaces from inside
/// its user namespace (user first, runtime-spec config-linux.md), and setns(2) into a pid namespace
/// needs CAP_SYS_ADMIN in the user namespace owning it: the pid namespace must be owned by the pod's,
/// so it must be created by a process that has already joined the pod's user namespace. A .NET
/// process is multithreaded and may not join a user namespace (setns EINVAL), so two children do it:
/// <list type="number">
/// <item>the joiner, clone(CLONE_VM | CLONE_VFORK): setns into the pod's user namespace, become its
/// root (setresgid/setresuid 0, no supplementary groups), then clone the infra with CLONE_NEWPID (a
/// pid namespace owned by the pod's user namespace) and CLONE_PARENT (the daemon is its parent, as
/// for every other pod's infra), and exit;</item>
/// <item>the infra, PID 1 of that namespace: default signal dispositions, its own session,
/// /dev/null on 0-2, every other descriptor close-on-exec, an empty signal mask, then execveat of the
/// executable the daemon opened (so the pod's root needs no search permission on its folders).</item>
/// </list>
/// This is what glibc's posix_spawn does for its own child: CLONE_VM | CLONE_VFORK suspends the
/// calling thread until the child execs or exits, and the child runs on a stack of its own. Here the
/// child code is <see cref="ChildMain"/>, which is therefore written like a signal handler: no
/// allocation, no exception, no lock, nothing but calls through the function pointers in the
/// <see cref="Block"/> the daemon filled in before the clone. To the runtime it is the suspended
/// thread making a native callback (same thread-local storage, a GC waits for it at each call, as it
/// waits for any thread), while the kernel sees a separate single-threaded process that may change
/// its user namespace and credentials without touching the daemon's.
/// </summary>
public static unsafe partial class InfraProcess
{
    private const int ChildStackSize = 256 * 1024;

    // Steps the children report when a call fails, named in the exception (index into StepNames).
    private const int StepSetnsUser = 1, StepSetgroups = 2, StepSetresgid = 3, StepSetresuid = 4, StepCloneInfra = 5,
        StepSetsid = 6, StepDevNull = 7, StepCloseRange = 8, StepExec = 9;

    private static readonly string[] StepNames =
        ["", "setns", "setgroups", "setresgid", "setresuid", "clone", "setsid", "open /dev/null", "close_range", "execveat"];

    private static readonly Lazy<Calls> LibcCalls = new(Calls.Resolve, LazyThreadSafetyMode.ExecutionAndPublication);

    private static int SpawnInUserNamespace(InfraRequest r)
    {
        // Opened here, by the daemon: the children inherit copies of both (CLONE_VM without
        // CLONE_FILES copies the descriptor table).
        using SafeFd userns = Interop.OpenChecked(r.UserNsPath!, O_RDONLY | O_CLOEXEC, 0, "join", "user");
        using SafeFd exe = Interop.OpenChecked(r.Executable, O_PATH | O_CLOEXEC, 0, "spawn infra", "pid");
        using var argv = new CStringArray(r.Args);
        using var envp = new CStringArray(r.Environment ?? []);
        using var paths = new CStringArray(["/dev/null", ""]);
        var calls = LibcCalls.Value;
        var block = (Block*)NativeMemory.AllocZeroed((nuint)sizeof(Block));
        byte* joinerStack = (byte*)NativeMemory.Alloc(ChildStackSize);
        byte* infraStack = (byte*)NativeMemory.Alloc(ChildStackSize);
        using var usernsLease = userns.Borrow();
        using var exeLease = exe.Borrow();
        try
        {
            block->Calls = calls;
            block->UserNsFd = usernsLease.Fd;
            block->ExeFd = exeLease.Fd;
            block->Argv = argv.Pointers;
            block->Envp = envp.Pointers;
            block->DevNull = paths.Pointers[0];
            block->EmptyPath = paths.Pointers[1];
            block->InfraStack = Top(infraStack);
            block->Stage = StageJoin;

            sigset_t all, old;
            sigfillset(&all);

            // Every signal blocked across the clone (the children inherit the mask): no handler of the
            // daemon may run in them; the infra unblocks them just before its exec.
            pthread_sigmask(SIG_SETMASK, &all, &old);
            int joiner = clone(calls.Entry, Top(joinerStack), CLONE_VM | CLONE_VFORK | SIGCHLD, block, null, null, null);
            int cloneErrno = Interop.LastErrno;
            pthread_sigmask(SIG_SETMASK, &old, null);
            if (joiner < 0)
            {
                throw Interop.Error(cloneErrno, "clone", null, "spawn infra", "pid");
            }

            // Back here once the joiner has exited (CLONE_VFORK): it is a zombie to reap.
            Interop.Reap(joiner, 0, out _);
            if (block->FailedStep != 0)
            {
                if (block->InfraPid > 0)
                {
                    Interop.Reap(block->InfraPid, 0, out _);
                }

                string? path = block->FailedStep switch
                {
                    StepSetnsUser => r.UserNsPath,
                    StepDevNull => "/dev/null",
                    StepExec => r.Executable,
                    _ => null,
                };
                throw Interop.Error(block->Errno, StepNames[block->FailedStep], path, "spawn infra", block->FailedStep == StepSetnsUser ? "user" : "pid");
            }

            return block->InfraPid;
        }
        finally
        {
            NativeMemory.Free(infraStack);
            NativeMemory.Free(joinerStack);
            NativeMemory.Free(block);
        }
    }

    private static void* Top(byte* stack) => (void*)(((nint)stack + ChildStackSize) & ~(nint)15);

    private const int StageWarmUp = 0, StageJoin = 1, StageInfra = 2;

    /// <summary>
    /// Runs in the children only (and once, as a no-op, in the daemon to have it compiled): see the
    /// class comment for what it may do. Hence no call of a managed method (not even a Tmds.LibC
    /// constant, a property: a first call would be compiled here), literal constants, a goto for the
    /// failure path, and fully optimised code from the start (no tier-0 code, whose unmanaged calls
    /// could go through stubs made on first use). Returns the child's exit code (clone(2)'s wrapper
    /// calls _exit with it).
    /// </summary>
    [UnmanagedCallersOnly]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ChildMain(Block* b)
    {
        // <sched.h>, <signal.h>, <fcntl.h>, <linux/close_range.h>; the same on x86_64 and arm64.
        const int CLONE_VM_ = 0x100, CLONE_VFORK_ = 0x4000, CLONE_PARENT_ = 0x8000, CLONE_NEWUSER_ = 0x10000000,
            CLONE_NEWPID_ = 0x20000000, SIGCHLD_ = 17, SIGKILL_ = 9, SIGSTOP_ = 19, NSIG = 65, SIG_SETMASK_ = 2,
            O_RDWR_ = 2, AT_EMPTY_PATH_ = 0x1000;
        const long CLOSE_RANGE_CLOEXEC = 4;

        var c = &b->Calls;
        int step;
        if (b->Stage == StageWarmUp)
        {
            return 0;
        }

        if (b->Stage == StageJoin)
        {
            if (c->Setns(b->UserNsFd, CLONE_NEWUSER_) != 0)
            {
                step = StepSetnsUser;
                goto Fail;
            }

            // Raw syscalls: glibc's setresuid/setgroups wrappers would signal every thread of the
            // daemon (their "setxid" broadcast) from this other process.
            if (c->Syscall(c->NrSetgroups, 0, 0, 0) != 0)
            {
                step = StepSetgroups;
                goto Fail;
            }

            if (c->Syscall(c->NrSetresgid, 0, 0, 0) != 0)
            {
                step = StepSetresgid;
                goto Fail;
            }

            if (c->Syscall(c->NrSetresuid, 0, 0, 0) != 0)
            {
                step = StepSetresuid;
                goto Fail;
            }

            b->Stage = StageInfra;
            int infra = c->Clone(c->Entry, b->InfraStack, CLONE_VM_ | CLONE_VFORK_ | CLONE_PARENT_ | CLONE_NEWPID_ | SIGCHLD_, b);
            if (infra < 0)
            {
                step = StepCloneInfra;
                goto Fail;
            }

            b->InfraPid = infra;
            return 0;
        }

        // The infra: PID 1 of the new pid namespace, sharing the daemon's memory until the exec.
        // SIG_DFL for every signal (the daemon ignores SIGPIPE, and ignored signals survive exec);
        // glibc refuses its two internal ones, which is fine. A zeroed struct sigaction is SIG_DFL.
        byte* dfl = stackalloc byte[256];
        for (int i = 0; i < 256; i++)
        {
            dfl[i] = 0;
        }

        for (int sig = 1; sig < NSIG; sig++)
        {
            if (sig != SIGKILL_ && sig != SIGSTOP_)
            {
                c->Sigaction(sig, dfl, null);
            }
        }

        if (c->Setsid() < 0)
        {
            step = StepSetsid;
            goto Fail;
        }

        int devNull = c->Open(b->DevNull, O_RDWR_, 0);
        if (devNull < 0)
        {
            step = StepDevNull;
            goto Fail;
        }

        for (int fd = 0; fd < 3; fd++)
        {
            if (devNull != fd && c->Dup2(devNull, fd) < 0)
            {
                step = StepDevNull;
                goto Fail;
            }
        }

        // Nothing of the daemon's descriptors survives the exec, close-on-exec or not (the
        // executable's own O_PATH descriptor included: execveat of an ELF file needs it no longer).
        if (c->Syscall(c->NrCloseRange, 3, uint.MaxValue, CLOSE_RANGE_CLOEXEC) != 0)
        {
            step = StepCloseRange;
            goto Fail;
        }

        // An empty mask (dfl's first 128 bytes are a cleared sigset_t), then the exec.
        c->Sigprocmask(SIG_SETMASK_, dfl, null);
        c->Execveat(b->ExeFd, b->EmptyPath, b->Argv, b->Envp, AT_EMPTY_PATH_);
        step = StepExec;

    Fail:
        b->Errno = *c->ErrnoLocation();
        b->FailedStep = step;
        return 127;
    }

    /// <summary>What the daemon hands the children, in memory they share with it.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Block
    {
        public Calls Calls;
        public int Stage;
        public int UserNsFd;
        public int ExeFd;
        public byte** Argv;
        public byte** Envp;
        public byte* DevNull;
        public byte* EmptyPath;
        public void* InfraStack;

        // Answers of the children.
        public int InfraPid;
        public int FailedStep;
        public int Errno;
    }

    /// <summary>
    /// libc's functions as plain function pointers, resolved in the daemon before any clone. Our own
    /// rather than Tmds.LibC's: a child that shares the daemon's memory may run no marshalling stub,
    /// lazy binding or last-error bookkeeping, only the call itself.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Calls
    {
        public void* Entry;
        public delegate* unmanaged<void*, void*, int, void*, int> Clone;
        public delegate* unmanaged<int, int, int> Setns;
        public delegate* unmanaged<long, long, long, long, long> Syscall;
        public delegate* unmanaged<int> Setsid;
        public delegate* unmanaged<byte*, int, int, int> Open;
        public delegate* unmanaged<int, int, int> Dup2;
        public delegate* unmanaged<int, void*, void*, int> Sigaction;
        public delegate* unmanaged<int, void*, void*, int> Sigprocmask;
        public delegate* unmanaged<int, byte*, byte**, byte**, int, int> Execveat;
        public delegate* unmanaged<int*> ErrnoLocation;

        // Syscall numbers that differ between architectures (close_range is 436 on all of them).
        public long NrSetgroups, NrSetresuid, NrSetresgid, NrCloseRange;

        public static Calls Resolve()
        {
            nint libc = NativeLibrary.Load(Interop.Libc);
            var calls = new Calls
            {
                Entry = (delegate* unmanaged<Block*, int>)&InfraProcess.ChildMain,
                Clone = (delegate* unmanaged<void*, void*, int, void*, int>)NativeLibrary.GetExport(libc, "clone"),
                Setns = (delegate* unmanaged<int, int, int>)NativeLibrary.GetExport(libc, "setns"),
                Syscall = (delegate* unmanaged<long, long, long, long, long>)NativeLibrary.GetExport(libc, "syscall"),
                Setsid = (delegate* unmanaged<int>)NativeLibrary.GetExport(libc, "setsid"),
                Open = (delegate* unmanaged<byte*, int, int, int>)NativeLibrary.GetExport(libc, "open"),
                Dup2 = (delegate* unmanaged<int, int, int>)NativeLibrary.GetExport(libc, "dup2"),
                Sigaction = (delegate* unmanaged<int, void*, void*, int>)NativeLibrary.GetExport(libc, "sigaction"),
                Sigprocmask = (delegate* unmanaged<int, void*, void*, int>)NativeLibrary.GetExport(libc, "sigprocmask"),

                // glibc 2.34+.
                Execveat = (delegate* unmanaged<int, byte*, byte**, byte**, int, int>)NativeLibrary.GetExport(libc, "execveat"),
                ErrnoLocation = (delegate* unmanaged<int*>)NativeLibrary.GetExport(libc, "__errno_location"),
                NrCloseRange = 436,
            };
            (calls.NrSetgroups, calls.NrSetresuid, calls.NrSetresgid) = RuntimeInformation.ProcessArchitecture switch
            {
                Architecture.X64 => (116L, 117L, 119L),
                Architecture.Arm64 => (159L, 147L, 149L),
                var other => throw new PlatformNotSupportedException($"user-namespaced infra processes on {other}"),
            };

            // The first call compiles ChildMain (JIT) and its native entry stub in the daemon, where
            // that may allocate and lock; a child only ever runs code that exists already.
            var warm = new Block { Calls = calls, Stage = StageWarmUp };
            ((delegate* unmanaged<Block*, int>)calls.Entry)(&warm);
            return calls;
        }
    }
}
