using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>The pod's infra process, PID 1 of a new pid namespace, and the pin of that namespace.</summary>
public sealed record InfraHandle(int Pid, PinnedNamespace Pin);

/// <summary>What to start as a pod's infra process and which of its pinned namespaces it joins.</summary>
public sealed record InfraRequest
{
    public required string NamespacesDir { get; init; }

    /// <summary>The pod's uuid, so the pid pin sits next to its other pins.</summary>
    public required string Uuid { get; init; }

    public required string Executable { get; init; }

    /// <summary>argv, including argv[0].</summary>
    public required IReadOnlyList<string> Args { get; init; }

    /// <summary>"NAME=value" entries; empty by default so nothing of the daemon leaks.</summary>
    public IReadOnlyList<string> Environment { get; init; } = [];

    public string? NetNsPath { get; init; }

    public string? IpcNsPath { get; init; }

    public string? UtsNsPath { get; init; }

    /// <summary>
    /// The pod's user namespace pin, when it has one: the pid namespace is then created by a process
    /// that has joined it (so that namespace owns it, and an OCI runtime joining from inside may
    /// enter it), and the infra process runs as its root.
    /// </summary>
    public string? UserNsPath { get; init; }
}

public static unsafe partial class InfraProcess
{
    /// <summary>
    /// Starts the infra process as PID 1 of a new pid namespace and pins that namespace at
    /// &lt;dir&gt;/pidns/&lt;uuid&gt;. If a net/ipc/uts pin is given, the process is born in it.
    /// </summary>
    public static InfraHandle Start(InfraRequest request)
    {
        string pinPath = Prepare(request);
        int pid = 0;
        Exception? error = null;
        var thread = SpawnThread(request, p => pid = p, e => error = e);
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }

        var handle = Pin(pid, pinPath, request.UserNsPath is not null);
        var deadline = Environment.TickCount64 + 1000;
        while (!HasSigtermHandler(pid) && Environment.TickCount64 < deadline)
        {
            Thread.Sleep(1);
        }

        return handle;
    }

    private static string Prepare(InfraRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrEmpty(request.Executable);
        ArgumentException.ThrowIfNullOrEmpty(request.Uuid);
        if (request.Args is null || request.Args.Count == 0)
        {
            throw new ArgumentException("argv needs at least argv[0]", nameof(request.Args));
        }

        string pin = PinnedNamespace.PathFor(request.NamespacesDir, "pid", request.Uuid);
        NsFiles.EnsureDirTree(Path.GetDirectoryName(pin)!, "pid");
        return pin;
    }

    /// <summary>
    /// The infra is spawned from a new thread, used once and left to exit, never a pool thread: it
    /// joins the pod's net/ipc/uts namespaces, and unshare(CLONE_NEWPID) changes pid_ns_for_children
    /// of this thread only and for good (once the namespace's init dies no process can ever be
    /// created in it again).
    /// </summary>
    private static Thread SpawnThread(InfraRequest request, Action<int> done, Action<Exception> failed) =>
        new(() =>
        {
            int pid;
            try
            {
                pid = SpawnInNewPidNs(request);
            }
            catch (Exception e)
            {
                failed(e);
                return;
            }

            done(pid);
        })
        { IsBackground = true, Name = "crid-infra-spawn" };

    /// <param name="chown">Own the pin as the infra's owner does (the pod's root in a user-namespaced pod), as its other pins are.</param>
    private static InfraHandle Pin(int pid, string pinPath, bool chown)
    {
        var pin = new PinnedNamespace("pid", pinPath);
        bool created = false;
        try
        {
            uint uid = 0, gid = 0;
            if (chown)
            {
                // /proc/<pid> belongs to the process's effective ids (proc(5)).
                string proc = $"/proc/{pid}";
                Interop.CheckIo(Interop.Statx(proc, 0, STATX_UID | STATX_GID, out var st), "statx", proc, "create pin", "pid");
                (uid, gid) = (st.stx_uid, st.stx_gid);
            }

            NsFiles.CreatePinFile(pinPath, "pid", chown, uid, gid);
            created = true;
            NsFiles.BindMount($"/proc/{pid}/ns/pid", pinPath, "pid");
        }
        catch
        {
            try
            {
                // Never remove a file this call did not create (O_EXCL failed: someone's pin).
                if (created)
                {
                    pin.Remove();
                }
            }
            catch (SyscallException)
            {
                // Report the original error.
            }

            HelperChild.KillAndReap(pid);
            throw;
        }

        return new InfraHandle(pid, pin);
    }

    /// <summary>
    /// pid_namespaces(7): the init of a namespace gets only the signals it has a handler for, the
    /// others are dropped. Until the infra process has installed its SIGTERM handler, a SIGTERM sent
    /// to it is lost for good, so the sandbox is not handed out before. A JIT-compiled .NET program
    /// has one from runtime start-up; a NativeAOT one only once PosixSignalRegistration runs, a few
    /// milliseconds after exec, which a caller signalling right after RunPodSandbox would beat. A
    /// program that never installs one (not ours) is waited for at most a second. True once it has
    /// one, or is gone.
    /// </summary>
    private static bool HasSigtermHandler(int pid)
    {
        const ulong SigtermBit = 1UL << (15 - 1);
        string? caught = null;
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("SigCgt:", StringComparison.Ordinal))
                {
                    caught = line[7..].Trim();
                    break;
                }
            }
        }
        catch (IOException)
        {
            return true; // Gone already: nothing left to wait for.
        }

        return caught is null || (ulong.TryParse(caught, System.Globalization.NumberStyles.HexNumber, null, out ulong mask) && (mask & SigtermBit) != 0);
    }

    /// <summary>
    /// Kills the infra process if <paramref name="pid"/> still is the init of the pinned pid
    /// namespace (a pid can be reused after a daemon restart), reaps it, then removes the pin.
    /// Idempotent.
    /// </summary>
    public static void Kill(int pid, string pinPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(pinPath);
        if (pid > 0 && NsFiles.IsNsfs(pinPath) &&
            NsFiles.TryInode(pinPath, out ulong pinned) &&
            NsFiles.TryInode($"/proc/{pid}/ns/pid", out ulong actual) && pinned == actual)
        {
            if (kill(pid, SIGKILL) == 0)
            {
                Reap(pid);
            }
        }

        PinnedNamespace.FromPath(pinPath).Remove();
    }

    /// <summary>True once <paramref name="pid"/> is reaped by us, or gone (not our child: its parent reaps it).</summary>
    private static bool TryReap(int pid)
    {
        int rc = Interop.Reap(pid, Interop.WNOHANG, out _);
        return rc > 0 || (rc < 0 && (Interop.LastErrno != ECHILD || !Directory.Exists($"/proc/{pid}")));
    }

    private static void Reap(int pid)
    {
        if (Interop.Reap(pid, 0, out _) < 0 && Interop.LastErrno == ECHILD)
        {
            // Not our child (the daemon restarted): its new parent reaps it; wait briefly.
            for (int i = 0; i < 500 && Directory.Exists($"/proc/{pid}"); i++)
            {
                Thread.Sleep(10);
            }
        }
    }

    /// <summary>
    /// The main loop of "crid pause": PID 1 of the pod's pid namespace. It reaps orphans and exits
    /// on SIGTERM/SIGINT; pid_namespaces(7): init gets only signals it has a handler for (plus
    /// SIGKILL from an ancestor namespace), so unhandled ones are simply dropped.
    /// </summary>
    public static int RunPause()
    {
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => _exit(0));
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => _exit(0));
        while (true)
        {
            if (Interop.Reap(-1, 0, out _) < 0 && Interop.LastErrno == ECHILD)
            {
                Thread.Sleep(1000);
            }
        }
    }

    private static int SpawnInNewPidNs(InfraRequest r)
    {
        Join(r.NetNsPath, CLONE_NEWNET, "net");
        Join(r.IpcNsPath, CLONE_NEWIPC, "ipc");
        Join(r.UtsNsPath, CLONE_NEWUTS, "uts");
        if (r.UserNsPath is not null)
        {
            return SpawnInUserNamespace(r);
        }

        Interop.CheckIo(unshare(CLONE_NEWPID), "unshare", null, "unshare", "pid");
        // The first child after unshare(CLONE_NEWPID) is PID 1 of the new namespace. The same set-up
        // as every other child (ChildProcess.Spawn): default signal dispositions and an empty mask,
        // /dev/null on 0-2, nothing else of the daemon's descriptors; a session of its own keeps it
        // out of the daemon's process group (a terminal's ^C).
        return ChildProcess.Spawn(new SpawnOptions
        {
            Executable = r.Executable,
            Args = r.Args,
            Environment = r.Environment ?? [],
            NewSession = true,
        }, "spawn infra", "pid");
    }

    private static void Join(string? path, int flag, string type)
    {
        if (path is null)
        {
            return;
        }

        using SafeFd fd = Interop.OpenChecked(path, O_RDONLY | O_CLOEXEC, 0, "join", type);
        Interop.CheckIo(Interop.Setns(fd, flag), "setns", path, "join", type);
    }

    /// <summary>A NULL-terminated char*[] in native memory, for argv/envp.</summary>
    private sealed class CStringArray : IDisposable
    {
        public CStringArray(IReadOnlyList<string> items)
        {
            Pointers = (byte**)NativeMemory.AllocZeroed((nuint)(items.Count + 1), (nuint)sizeof(byte*));
            for (int i = 0; i < items.Count; i++)
            {
                if (items[i].Contains('\0'))
                {
                    Dispose();
                    throw new ArgumentException("argument contains NUL", nameof(items));
                }

                int len = Encoding.UTF8.GetByteCount(items[i]);
                byte* s = (byte*)NativeMemory.Alloc((nuint)len + 1);
                Encoding.UTF8.GetBytes(items[i], new Span<byte>(s, len));
                s[len] = 0;
                Pointers[i] = s;
            }
        }

        public byte** Pointers { get; private set; }

        public void Dispose()
        {
            if (Pointers == null)
            {
                return;
            }

            for (byte** p = Pointers; *p != null; p++)
            {
                NativeMemory.Free(*p);
            }

            NativeMemory.Free(Pointers);
            Pointers = null;
        }
    }
}
