using System.Net.Sockets;
using Crid.Core.Configuration;
using Crid.Linux;

namespace Crid;

/// <summary>A reason the daemon cannot start on this host; printed as one line, exit code 1.</summary>
internal sealed class StartupException(string message) : Exception(message);

/// <summary>
/// The checks and preparations against the host that come after the config is loaded:
/// folders, the single-daemon lock and the socket path.
/// </summary>
internal static class HostPreparation
{
    /// <summary>
    /// Creates the daemon's folders, noting in <paramref name="created"/> each one it made, so a start
    /// refused later can take them away again.
    /// </summary>
    public static void CreateFolders(CridOptions options, List<string> created)
    {
        // The state dir holds pod specs and records: only root may list it, but anyone may pass
        // through (0711). runc 1.1 bind-mounts a container's rootfs (<state>/containers/<id>/rootfs)
        // from inside a pod's user namespace, as the pod's root (a host uid such as 200000), who
        // must search every folder on the way ("mount .../rootfs: permission denied" otherwise).
        // What must stay private is private below it: sandboxes/ and the image store's blobs are
        // 0700, records and specs 0600.
        CreateDirectory(options.StateDir, Traversable, created);
        MakeTraversable(options.StateDir);
        CreateDirectory(options.NamespacesDir, Default, created);
        CreateDirectory(Path.GetDirectoryName(options.Listen)!, Default, created);
        // The runtime's state and the monitors' files: only root may look, as in the state dir.
        CreateDirectory(options.RuntimeRoot, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, created);
    }

    /// <summary>The lock file that keeps a second daemon off a runtime root.</summary>
    public static string RuntimeRootLock(CridOptions options) => Path.Combine(options.RuntimeRoot, "crid.lock");

    /// <summary>
    /// conmon puts each container's attach socket at &lt;handler folder&gt;/attach/&lt;id&gt;/attach,
    /// and a Unix socket's path must fit in sun_path (108 bytes with its NUL): a runtime root too
    /// long for that would fail every container with a cryptic bind error, so the start is refused.
    /// </summary>
    public static void CheckRuntimeRoot(CridOptions options)
    {
        foreach (var handler in options.Handlers())
        {
            var socket = Path.Combine(options.RuntimeRoot, handler.StateFolderName, "attach", new string('0', 64), "attach");
            if (System.Text.Encoding.UTF8.GetByteCount(socket) > 107)
                throw new StartupException($"runtime-root {options.RuntimeRoot} is too long: attach sockets under it would take " +
                    $"{System.Text.Encoding.UTF8.GetByteCount(socket)} bytes, more than the 107 a Unix socket path may have; choose a shorter folder");
        }
    }

    private const UnixFileMode Traversable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>A state dir made 0700 by an older crid gets the search bits it now needs (nothing else changes).</summary>
    private static void MakeTraversable(string path)
    {
        try
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != (UnixFileMode.GroupExecute | UnixFileMode.OtherExecute))
                File.SetUnixFileMode(path, mode | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartupException($"cannot make {path} searchable: {e.Message}");
        }
    }

    private const UnixFileMode Default = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private static void CreateDirectory(string path, UnixFileMode mode, List<string> created)
    {
        try
        {
            if (File.Exists(path))
                throw new StartupException($"{path} is a file, not a folder");
            if (Directory.Exists(path))
                return;
            // Parents first, each noted, so a refused start removes exactly what it made.
            var parent = Path.GetDirectoryName(path);
            if (parent is not null && !Directory.Exists(parent))
                CreateDirectory(parent, Default, created);
            Directory.CreateDirectory(path, mode);
            created.Add(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartupException($"cannot create {path}: {e.Message}");
        }
    }

    /// <summary>The lock file that keeps a second daemon off a namespaces dir.</summary>
    public static string NamespacesLock(CridOptions options) => Path.Combine(options.NamespacesDir, "crid-namespaces.lock");

    /// <summary>
    /// Holds an exclusive lock for the daemon's lifetime on <paramref name="path"/>: the state dir's
    /// (two daemons never share one, even on different sockets) or the namespaces dir's (a daemon's
    /// recovery must never meet another's pins half-made). .NET takes flock(LOCK_EX|LOCK_NB) for
    /// FileShare.None on Unix; the kernel drops it when the process dies, however it dies.
    /// </summary>
    /// <param name="created">gets the path when the lock file did not exist before.</param>
    public static FileStream Lock(string path, string what, List<string> created)
    {
        var existed = File.Exists(path);
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            if (!existed)
                created.Add(path);
            return stream;
        }
        catch (IOException)
        {
            // A helper child of a daemon killed mid-Run still holds the lock (see OrphanHelpers);
            // once it is killed, the kernel drops the lock when it exits. A process of the dead
            // daemon may also let go of it on its own between our open and our look (a spawned
            // child exec'ing, a helper exiting): then nobody holds it any more, and we try again.
            for (var look = 0; ; look++)
            {
                var killed = OrphanHelpers.Kill(Path.GetFullPath(path), out var holders);
                if (killed.Count > 0)
                {
                    // Logging is not set up yet: one line on stderr, as the start-up errors are.
                    Console.Error.WriteLine($"crid: killed {killed.Count} helper process(es) of a previous daemon still holding {path}: {string.Join(", ", killed)}");
                    break;
                }
                if (holders > 0 || look >= 100)
                    throw new StartupException($"another crid daemon is using the {what} (it holds {path})");
                Thread.Sleep(10);
                try
                {
                    return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                }
                catch (IOException)
                {
                    // Still locked: look again.
                }
            }
        }
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (attempt < 1000)
            {
                Thread.Sleep(10);
            }
            catch (IOException)
            {
                throw new StartupException($"another crid daemon is using the {what} (it holds {path})");
            }
        }
    }

    /// <summary>
    /// Refuses the start, before anything is created, when a live daemon answers on the socket.
    /// </summary>
    public static void CheckSocketFree(string path)
    {
        if (Directory.Exists(path))
            throw new StartupException($"{path} is a folder, not a socket");
        if (!File.Exists(path))
            return;
        if (!HostFiles.IsSocket(path))
            throw new StartupException($"{path} exists and is not a socket; remove it or choose another --listen path");
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            throw new StartupException($"another daemon is answering on {path}; stop it first");
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused)
        {
            // Nobody listens: the file is a leftover of a daemon that died without cleaning up.
        }
    }

    /// <summary>
    /// A socket file left by a dead daemon is removed; one that a live daemon answers on stops the start.
    /// </summary>
    public static void ClaimSocket(string path)
    {
        CheckSocketFree(path);
        if (File.Exists(path))
            File.Delete(path);
    }
}
