namespace Crid.Runtime;

/// <summary>
/// Where one container's files live. The driver's own folder holds everything it needs to find a
/// container again by id alone after a restart; the bundle only gets what conmon puts there.
/// </summary>
/// <remarks>
/// <code>
/// &lt;state&gt;/exits/&lt;id&gt;                 conmon --exit-dir: the exit code, written (renamed in) when the container exits
/// &lt;state&gt;/attach/&lt;id&gt; -> &lt;bundle&gt;     conmon --socket-dir-path: a short path to the bundle's sockets
/// &lt;state&gt;/containers/&lt;id&gt;/           conmon --persist-dir and working folder:
///     exit, oom                        conmon: the exit code again; present once the memory cgroup OOM-killed
///     conmon.pid, container.pid        conmon -P, -p
///     bundle -> &lt;bundle&gt;, log -> &lt;log&gt; the driver's links, read back by id
///     exec-*.json, exec-*.pid, exec-*.log  one exec's process spec, pid file and runc's own log, while it runs
/// &lt;bundle&gt;/ctl, winsz, attach           conmon: control fifo, resize fifo, attach socket (SOCK_SEQPACKET)
/// &lt;runtime-root&gt;/&lt;id&gt;/state.json      runc
/// </code>
/// </remarks>
internal sealed class ContainerFiles
{
    public ContainerFiles(RuntimeOptions options, string id)
    {
        Id = id;
        ExitFile = Path.Combine(options.StateDir, "exits", id);
        AttachLink = Path.Combine(options.StateDir, "attach", id);
        PersistDir = Path.Combine(options.StateDir, "containers", id);
        RuntimeStateDir = Path.Combine(options.RuntimeRoot, id);
    }

    public string Id { get; }

    public string ExitFile { get; }

    public string AttachLink { get; }

    public string AttachSocket => Path.Combine(AttachLink, "attach");

    public string ControlFifo => Path.Combine(AttachLink, "ctl");

    public string PersistDir { get; }

    public string OomFile => Path.Combine(PersistDir, "oom");

    public string ConmonPidFile => Path.Combine(PersistDir, "conmon.pid");

    public string ContainerPidFile => Path.Combine(PersistDir, "container.pid");

    public string BundleLink => Path.Combine(PersistDir, "bundle");

    public string LogLink => Path.Combine(PersistDir, "log");

    public string RuntimeStateDir { get; }

    /// <summary>The bundle this container was created from; null when the driver does not know the container.</summary>
    public string? Bundle => ReadLink(BundleLink);

    public string? LogPath => ReadLink(LogLink);

    /// <summary>The names conmon leaves in a bundle (the attach socket only while it runs).</summary>
    public static readonly string[] ConmonBundleFiles = ["ctl", "winsz", "attach", "oom"];

    /// <summary>The pid in a pid file; 0 when there is none (yet).</summary>
    public static int ReadPid(string path)
    {
        try
        {
            return int.TryParse(File.ReadAllText(path).Trim(), out int pid) && pid > 0 ? pid : 0;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static string? ReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
