using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>What to run as a child of the daemon, and with which descriptors.</summary>
public sealed record SpawnOptions
{
    /// <summary>An absolute path: no PATH search.</summary>
    public required string Executable { get; init; }

    /// <summary>argv, including argv[0].</summary>
    public required IReadOnlyList<string> Args { get; init; }

    /// <summary>"NAME=value" entries; empty by default so nothing of the daemon's environment leaks.</summary>
    public IReadOnlyList<string> Environment { get; init; } = [];

    public string? WorkingDirectory { get; init; }

    /// <summary>
    /// Descriptors the child gets, by number: fd n of the child is a copy of the handle. 0, 1 and 2
    /// not given here are /dev/null. Every other descriptor of the daemon is close-on-exec.
    /// </summary>
    public IReadOnlyDictionary<int, SafeHandle> Fds { get; init; } = new Dictionary<int, SafeHandle>();

    /// <summary>
    /// A terminal's path (a pty slave): opened as fd 0 after setsid and duplicated onto 1 and 2, so
    /// it becomes the child's controlling terminal (credentials(7): a session leader that opens a
    /// terminal without O_NOCTTY acquires it). Implies <see cref="NewSession"/>.
    /// </summary>
    public string? ControllingTerminal { get; init; }

    /// <summary>setsid(): the child leads a session and a process group of its own.</summary>
    public bool NewSession { get; init; }

    /// <summary>setpgid(0, 0): the child leads a process group of its own, so a terminal's ^C or a
    /// signal to the daemon's group does not reach it.</summary>
    public bool NewProcessGroup { get; init; }
}

/// <summary>How a process ended, as wait(2) tells it.</summary>
public readonly record struct ProcessExit(int ExitCode, int Signal)
{
    /// <summary>A shell's $?: the exit code, or 128 + the signal that killed it.</summary>
    public int Code => Signal != 0 ? 128 + Signal : ExitCode;

    public override string ToString() => Signal != 0 ? $"killed by signal {Signal}" : $"exit code {ExitCode}";
}

/// <summary>
/// A child started with posix_spawn and watched through a pidfd: its exit is a Task, reaped by this
/// class alone, so no thread waits in waitpid and no signal reaches a recycled pid. There is
/// nothing to dispose: the pidfd is closed when the child is reaped.
/// </summary>
public sealed class ChildProcess
{
    private readonly SafeFd _pidfd;

    private ChildProcess(int pid, SafeFd pidfd)
    {
        Pid = pid;
        _pidfd = pidfd;
        Exited = WaitAndReapAsync();
    }

    public int Pid { get; }

    /// <summary>Completes once the child has exited and been reaped.</summary>
    public Task<ProcessExit> Exited { get; }

    /// <summary>posix_spawn(3) with the options' descriptors, directory and session.</summary>
    /// <exception cref="SyscallException">the executable could not be started (its errno named).</exception>
    public static unsafe ChildProcess Start(SpawnOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.Executable);
        if (options.Args.Count == 0)
        {
            throw new ArgumentException("argv needs at least argv[0]", nameof(options));
        }

        int pid = Spawn(options);

        // Our own unreaped child cannot be recycled before we wait for it, so this pidfd is its.
        var pidfd = Interop.PidfdOpen(pid);
        if (pidfd.IsInvalid)
        {
            var error = Interop.Error("pidfd_open", options.Executable);
            kill(pid, SIGKILL);
            Interop.Reap(pid, 0, out _);
            throw error;
        }

        return new ChildProcess(pid, pidfd);
    }

    /// <summary>Sends a signal unless the child has been reaped already (pidfd_send_signal: never a recycled pid).</summary>
    /// <returns>false when the child is gone.</returns>
    public bool Signal(int signal)
    {
        // The pidfd is closed once the child is reaped; the lease keeps its number from being
        // reused by another file while the signal is sent.
        try
        {
            return Interop.PidfdSendSignal(_pidfd, signal) == 0;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>
    /// Waits for a process that need not be ours (a daemonised conmon found again after a restart).
    /// Returns at once when it is gone already.
    /// </summary>
    public static async Task WaitForExitAsync(int pid, CancellationToken cancellationToken)
    {
        using var pidfd = OpenPidfd(pid);
        if (pidfd is null)
        {
            return;
        }

        await FdPoller.Shared.WaitAsync(pidfd, write: false, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends a signal to the process group <paramref name="pid"/> leads or belongs to (how conmon
    /// ends a timed-out exec: the command and whatever it started); to the process alone when its
    /// group is init's or cannot be read. false when the process is gone.
    /// </summary>
    public static bool SignalGroupOf(int pid, int signal)
    {
        if (pid <= 0)
        {
            return false;
        }

        int group = getpgid(pid);
        if (group > 1)
        {
            return kill(-group, signal) == 0;
        }

        return kill(pid, signal) == 0;
    }

    /// <summary>Whether a process with this pid exists (a zombie counts: it has not been reaped).</summary>
    public static bool IsAlive(int pid) => pid > 0 && (kill(pid, 0) == 0 || Interop.LastErrno == EPERM);

    private static SafeFd? OpenPidfd(int pid)
    {
        var pidfd = Interop.PidfdOpen(pid);
        if (!pidfd.IsInvalid)
        {
            return pidfd;
        }

        var error = Interop.Error("pidfd_open", $"/proc/{pid}");
        pidfd.Dispose();
        return error.Errno == ESRCH ? null : throw error;
    }

    private async Task<ProcessExit> WaitAndReapAsync()
    {
        while (true)
        {
            await FdPoller.Shared.WaitAsync(_pidfd, write: false, CancellationToken.None).ConfigureAwait(false);
            if (TryReap(Pid, out var exit))
            {
                _pidfd.Dispose();
                return exit;
            }
        }
    }

    private static bool TryReap(int pid, out ProcessExit exit)
    {
        int r = Interop.Reap(pid, Interop.WNOHANG, out int status);
        if (r == 0)
        {
            exit = default;
            return false;
        }

        if (r < 0)
        {
            // ECHILD: reaped behind our back; the status is lost.
            exit = new ProcessExit(-1, 0);
            return true;
        }

        int sig = status & 0x7f;
        exit = sig == 0 ? new ProcessExit((status >> 8) & 0xff, 0) : new ProcessExit(0, sig);
        return true;
    }

    /// <summary>
    /// posix_spawn(3) of <paramref name="o"/>, nothing more (no pidfd, no reaping): the one place a
    /// child's attributes, signal sets and file actions are set up (<see cref="InfraProcess"/> spawns
    /// its infra with it too). <paramref name="step"/> and <paramref name="type"/> go into the exception.
    /// </summary>
    internal static unsafe int Spawn(SpawnOptions o, string? step = null, string? type = null)
    {
        var targets = o.Fds.Keys.ToArray();
        int minFd = Math.Max(3, targets.Length == 0 ? 0 : targets.Max() + 1);
        var copies = new List<SafeFd>();
        var refs = new List<SafeHandle>();
        var strings = new List<IntPtr>();
        byte* attr = stackalloc byte[Interop.SpawnAttrSize];
        byte* actions = stackalloc byte[Interop.SpawnFileActionsSize];
        sigset_t all, none;
        sigfillset(&all);
        sigemptyset(&none);
        Interop.PosixSpawnattrInit(attr);
        Interop.PosixSpawnFileActionsInit(actions);
        try
        {
            byte* Str(string s)
            {
                if (s.Contains('\0'))
                {
                    throw new ArgumentException("argument contains NUL", nameof(o));
                }

                int len = Encoding.UTF8.GetByteCount(s);
                byte* p = (byte*)NativeMemory.Alloc((nuint)len + 1);
                strings.Add((IntPtr)p);
                Encoding.UTF8.GetBytes(s, new Span<byte>(p, len));
                p[len] = 0;
                return p;
            }

            byte** Array(IReadOnlyList<string> items)
            {
                byte** a = (byte**)NativeMemory.AllocZeroed((nuint)(items.Count + 1), (nuint)sizeof(byte*));
                strings.Add((IntPtr)a);
                for (int i = 0; i < items.Count; i++)
                {
                    a[i] = Str(items[i]);
                }

                return a;
            }

            short flags = Interop.POSIX_SPAWN_SETSIGDEF | Interop.POSIX_SPAWN_SETSIGMASK;
            if (o.NewSession || o.ControllingTerminal is not null)
            {
                flags |= Interop.POSIX_SPAWN_SETSID;
            }
            else if (o.NewProcessGroup)
            {
                flags |= Interop.POSIX_SPAWN_SETPGROUP;
                Interop.PosixSpawnattrSetpgroup(attr, 0);
            }

            // Nothing of the daemon's signal handlers or blocked signals survives the exec.
            Interop.PosixSpawnattrSetflags(attr, flags);
            Interop.PosixSpawnattrSetsigdefault(attr, &all);
            Interop.PosixSpawnattrSetsigmask(attr, &none);

            // Every source is first copied above every target number, so one dup2 never
            // overwrites the source of the next (a source may itself be fd 3 or 4).
            foreach (var (target, source) in o.Fds)
            {
                bool added = false;
                source.DangerousAddRef(ref added);
                refs.Add(source);
                var copy = SafeFd.Check(fcntl((int)source.DangerousGetHandle(), F_DUPFD_CLOEXEC, minFd), "fcntl F_DUPFD_CLOEXEC", o.Executable);

                copies.Add(copy);
                Interop.PosixSpawnFileActionsAdddup2(actions, (int)copy.DangerousGetHandle(), target);
            }

            byte* devNull = Str("/dev/null");
            if (o.ControllingTerminal is not null)
            {
                Interop.PosixSpawnFileActionsAddopen(actions, 0, Str(o.ControllingTerminal), O_RDWR, 0);
                Interop.PosixSpawnFileActionsAdddup2(actions, 0, 1);
                Interop.PosixSpawnFileActionsAdddup2(actions, 0, 2);
            }

            for (int fd = 0; fd < 3; fd++)
            {
                if (!o.Fds.ContainsKey(fd) && o.ControllingTerminal is null)
                {
                    Interop.PosixSpawnFileActionsAddopen(actions, fd, devNull, fd == 0 ? O_RDONLY : O_WRONLY, 0);
                }
            }

            if (o.WorkingDirectory is not null)
            {
                Interop.PosixSpawnFileActionsAddchdir(actions, Str(o.WorkingDirectory));
            }

            // Close-on-exec is not enough: a descriptor the daemon inherited without it (from a
            // service manager, a test runner) would live on in a detached conmon for the
            // container's whole life. Nothing above the given numbers reaches the child.
            Interop.PosixSpawnFileActionsAddclosefrom(actions, minFd);

            byte* exe = Str(o.Executable);
            byte** argv = Array(o.Args);
            byte** envp = Array(o.Environment);
            int pid;
            int rc = Interop.PosixSpawn(&pid, exe, actions, attr, argv, envp);
            if (rc != 0)
            {
                throw Interop.Error(rc, "posix_spawn", o.Executable, step, type);
            }

            return pid;
        }
        finally
        {
            Interop.PosixSpawnFileActionsDestroy(actions);
            Interop.PosixSpawnattrDestroy(attr);
            foreach (var c in copies)
            {
                c.Dispose();
            }

            foreach (var r in refs)
            {
                r.DangerousRelease();
            }

            foreach (var p in strings)
            {
                NativeMemory.Free((void*)p);
            }
        }
    }
}
