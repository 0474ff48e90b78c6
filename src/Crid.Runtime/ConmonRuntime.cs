using System.Globalization;
using System.Text.RegularExpressions;
using Crid.Core.Containers;
using Crid.Core.Errors;
using Crid.Linux;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Crid.Runtime;

/// <summary>
/// Containers through conmon and runc, the way cri-o 1.26's runtime_oci.go drives them: conmon
/// monitors each container (detached, so it outlives the daemon), runs <c>runc create</c>, writes
/// the CRI log, and records the exit in a file this driver watches; runc does the rest directly.
/// One instance per runtime handler.
/// </summary>
public sealed partial class ConmonRuntime : IContainerRuntime, IDisposable
{
    private const UnixFileMode PrivateDir = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private readonly RuntimeOptions _options;
    private readonly ILogger _logger;
    private readonly RuncClient _runc;
    private readonly ExitWatcher _exits;

    /// <exception cref="ArgumentException">a folder is not absolute.</exception>
    public ConmonRuntime(RuntimeOptions options, ILogger<ConmonRuntime>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var (name, path) in new[] { ("RuntimeRoot", options.RuntimeRoot), ("StateDir", options.StateDir), ("ConmonPath", options.ConmonPath), ("RuntimePath", options.RuntimePath) })
        {
            if (!Path.IsPathFullyQualified(path))
            {
                throw new ArgumentException($"{name} must be an absolute path: \"{path}\"", nameof(options));
            }
        }

        _options = options;
        _logger = logger ?? NullLogger<ConmonRuntime>.Instance;
        _runc = new RuncClient(options);
        Directory.CreateDirectory(options.RuntimeRoot, PrivateDir);
        foreach (var sub in new[] { "exits", "attach", "containers" })
        {
            Directory.CreateDirectory(Path.Combine(options.StateDir, sub), PrivateDir);
        }

        _exits = new ExitWatcher(Path.Combine(options.StateDir, "exits"), ReadExit, e => ContainerExited?.Invoke(e), _logger);
    }

    public event Action<ContainerExit>? ContainerExited;

    public RuntimeOptions Options => _options;

    /// <summary>Stops watching exits. Containers and their monitors keep running.</summary>
    public void Dispose() => _exits.Dispose();

    public async Task StartAsync(string id, CancellationToken cancellationToken)
    {
        CheckId(id);
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        await _runc.StartAsync(id, ContainerFiles.ReadPid(Files(id).ContainerPidFile), cancellationToken).ConfigureAwait(false);
        RuntimeLog.Started(_logger, id, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
    }

    public async Task KillAsync(string id, int signal, bool allProcesses, CancellationToken cancellationToken)
    {
        CheckId(id);
        if (signal is <= 0 or > 64)
        {
            throw new InvalidArgumentException("signal", $"{signal} is not a signal number");
        }

        await _runc.KillAsync(id, signal, allProcesses, cancellationToken).ConfigureAwait(false);
    }

    public async Task DeleteAsync(string id, CancellationToken cancellationToken)
    {
        CheckId(id);
        var files = Files(id);
        string? bundle = files.Bundle;

        // runc delete --force kills a running container, waits for it, removes its state and cgroup.
        await _runc.DeleteAsync(id, cancellationToken).ConfigureAwait(false);

        // conmon writes the exit file after the container died: removing the files first would
        // let it leave a new exit file behind.
        await WaitForMonitorAsync(files, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        RemoveFiles(files, bundle);
        _exits.Forget(id);
    }

    public async Task UpdateResourcesAsync(string id, ReadOnlyMemory<byte> linuxResources, CancellationToken cancellationToken)
    {
        CheckId(id);
        var files = Files(id);
        if (!Directory.Exists(files.PersistDir))
        {
            throw new NotFoundException($"container {id} not found");
        }

        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(linuxResources);
            if (doc.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object)
            {
                throw new InvalidArgumentException("linux", "the resources are not a JSON object");
            }
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidArgumentException("linux", "the resources are not JSON: " + e.Message);
        }

        // runc update --resources reads a file ("-" would be stdin): one per call, removed after.
        string path = Path.Combine(files.PersistDir, "update-" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6)) + ".json");
        await File.WriteAllBytesAsync(path, linuxResources.ToArray(), cancellationToken).ConfigureAwait(false);
        try
        {
            var r = await _runc.RunAsync(["update", "--resources", path, id], cancellationToken).ConfigureAwait(false);
            if (!r.Succeeded)
            {
                throw _runc.Failure("update", id, r);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    public async Task<ContainerRuntimeState> StateAsync(string id, CancellationToken cancellationToken)
    {
        CheckId(id);
        return await ReadStateAsync(id, cancellationToken).ConfigureAwait(false)
            ?? throw new NotFoundException($"container {id} not found: neither the runtime nor the monitor know it");
    }

    public async Task<IReadOnlyDictionary<string, ContainerRuntimeState>> RecoverAsync(IReadOnlyCollection<string> ids, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var states = new System.Collections.Concurrent.ConcurrentDictionary<string, ContainerRuntimeState>(StringComparer.Ordinal);
        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken }, async (id, ct) =>
        {
            CheckId(id);
            var state = await ReadStateAsync(id, ct).ConfigureAwait(false)
                ?? new ContainerRuntimeState { Id = id, Status = ContainerRuntimeStatus.Stopped };
            if (state.Status == ContainerRuntimeStatus.Stopped)
            {
                _exits.MarkSeen(id);
            }

            states[id] = state;
        }).ConfigureAwait(false);

        // Made by a create whose caller crashed before recording it: nobody would ever remove it.
        var known = new HashSet<string>(ids, StringComparer.Ordinal);
        var orphans = Directory.EnumerateDirectories(Path.Combine(_options.StateDir, "containers"))
            .Concat(Directory.EnumerateDirectories(_options.RuntimeRoot))
            .Select(Path.GetFileName)
            .OfType<string>()
            .Where(id => !known.Contains(id) && IdPattern().IsMatch(id))
            .Distinct(StringComparer.Ordinal)
            .ToList();
        if (orphans.Count > 0)
        {
            await KillOrphanMonitorsAsync(orphans, cancellationToken).ConfigureAwait(false);
        }

        foreach (var id in orphans)
        {
            RuntimeLog.OrphanRemoved(_logger, id);
            string? cgroup = CgroupsPathOf(Files(id).Bundle);
            await DeleteAsync(id, cancellationToken).ConfigureAwait(false);
            if (cgroup is not null)
            {
                foreach (var dir in await CgroupFolders.RemoveAsync(cgroup, TimeSpan.FromSeconds(2)).ConfigureAwait(false))
                {
                    RuntimeLog.OrphanCgroupRemoved(_logger, id, dir);
                }
            }
        }

        return states;
    }

    /// <summary>
    /// Kills the conmons of <paramref name="orphans"/> and all they started, before their state is
    /// deleted: a conmon the crash left may still be on its way through <c>runc create</c> (or wait
    /// on its start pipe while a helper of the dead daemon holds it open), and would make its
    /// container after this recovery, with nobody to ever remove it. A conmon is ours when its
    /// --persist-dir is this driver's folder for an orphan's id: never the monitor of a recorded
    /// container, nor another daemon's (whose folders differ). The detached conmon leads a session
    /// of its own (setsid), and runc's container init one more, but all stay its descendants: conmon
    /// is their subreaper.
    /// </summary>
    private async Task KillOrphanMonitorsAsync(IReadOnlyCollection<string> orphans, CancellationToken cancellationToken)
    {
        var persistDirs = orphans.Select(id => Files(id).PersistDir).ToHashSet(StringComparer.Ordinal);
        bool IsOrphanMonitor(string[] argv)
        {
            if (argv.Length == 0 || !Path.GetFileName(argv[0]).Contains("conmon", StringComparison.Ordinal))
            {
                return false;
            }

            int at = Array.IndexOf(argv, "--persist-dir");
            return at >= 0 && at + 1 < argv.Length && persistDirs.Contains(argv[at + 1]);
        }

        var killed = await ProcessTrees.KillAsync(IsOrphanMonitor, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        if (killed.Count > 0)
        {
            RuntimeLog.OrphanMonitorsKilled(_logger, killed.Count, string.Join(' ', killed));
        }
    }

    /// <summary>linux.cgroupsPath of the bundle's config.json; null when there is none to read.</summary>
    private static string? CgroupsPathOf(string? bundle)
    {
        if (bundle is null)
        {
            return null;
        }

        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Path.Combine(bundle, "config.json")));
            return doc.RootElement.TryGetProperty("linux", out var linux) && linux.ValueKind == System.Text.Json.JsonValueKind.Object
                && linux.TryGetProperty("cgroupsPath", out var path) && path.ValueKind == System.Text.Json.JsonValueKind.String
                && path.GetString() is { Length: > 1 } p && p.StartsWith('/') && !p.Split('/').Contains("..")
                ? p : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            return null;
        }
    }

    public ContainerEndpoints Endpoints(string id)
    {
        CheckId(id);
        var files = Files(id);
        return new ContainerEndpoints(files.AttachSocket, files.ControlFifo);
    }

    public async Task ReopenLogAsync(string id, CancellationToken cancellationToken)
    {
        CheckId(id);
        var files = Files(id);
        string logPath = files.LogPath ?? throw new NotFoundException($"container {id} not found");
        int monitor = MonitorPid(files);
        if (monitor == 0)
        {
            throw new FailedPreconditionException($"container {id} is not running: no monitor writes its log");
        }

        // conmon reopens by writing <log>.tmp and renaming it over the log path (reopen_k8s_file):
        // the rename is the moment the new file exists.
        string name = Path.GetFileName(logPath);
        using var inotify = new Inotify();
        inotify.Watch(Path.GetDirectoryName(logPath)!, Inotify.MovedTo | Inotify.Create);
        if (!Fifo.TryWrite(files.ControlFifo, "2 0 0\n"))
        {
            throw new FailedPreconditionException($"container {id} is not running: its monitor's control fifo has no reader");
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(10));
        var reopened = WaitForNameAsync(inotify, name, logPath, deadline.Token);

        // A container that exits right now takes its monitor with it: nobody will reopen anything.
        var monitorGone = ChildProcess.WaitForExitAsync(monitor, deadline.Token);
        try
        {
            if (await Task.WhenAny(reopened, monitorGone).ConfigureAwait(false) == reopened || reopened.IsCompletedSuccessfully)
            {
                await reopened.ConfigureAwait(false);
                return;
            }

            await monitorGone.ConfigureAwait(false);
            throw new FailedPreconditionException($"container {id} stopped: its monitor exited before reopening the log");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RuntimeFailureException($"conmon of container {id} did not reopen {logPath} within 10 s");
        }
        finally
        {
            deadline.Cancel();
            await Task.WhenAll(reopened, monitorGone).ContinueWith(static _ => { }, TaskScheduler.Default).ConfigureAwait(false);
        }
    }

    private static async Task WaitForNameAsync(Inotify inotify, string name, string path, CancellationToken cancellationToken)
    {
        while (true)
        {
            foreach (var e in await inotify.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (e.Name == name || (e.Overflowed && File.Exists(path)))
                {
                    return;
                }
            }
        }
    }

    private ContainerFiles Files(string id) => new(_options, id);

    /// <summary>runc's id rule (^[\w+-\.]+$), not starting with '.': also a safe single path element.</summary>
    internal static void CheckId(string id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > 1024 || !IdPattern().IsMatch(id))
        {
            throw new InvalidArgumentException("container_id", $"\"{id}\" is not a valid container id (letters, digits, '_', '+', '-', '.'; not starting with '.')");
        }
    }

    [GeneratedRegex(@"^[A-Za-z0-9_+\-][A-Za-z0-9_+.\-]*$", RegexOptions.CultureInvariant)]
    private static partial Regex IdPattern();

    private async Task<ContainerRuntimeState?> ReadStateAsync(string id, CancellationToken cancellationToken)
    {
        // conmon writes the exit file once it reaped the container: with one, the container is
        // stopped, whatever else is left, and nothing more need be read or run (before, each exit
        // while the daemon was down cost recovery an exec of runc state).
        if (ReadExit(id) is { } exited)
        {
            return Stopped(exited);
        }

        // A live container's state without an exec of runc (at recovery, one per container took
        // minutes for 1,000 under load); runc answers for the rest: stopped, paused, or unreadable.
        if (_runc.TryReadLiveState(id) is { } live)
        {
            return new ContainerRuntimeState { Id = id, Status = RuncClient.StatusOf(live.Status), Pid = live.Pid };
        }

        var files = Files(id);
        var runc = await _runc.StateAsync(id, cancellationToken).ConfigureAwait(false);
        if (runc is not null && RuncClient.StatusOf(runc.Status) != ContainerRuntimeStatus.Stopped)
        {
            return new ContainerRuntimeState { Id = id, Status = RuncClient.StatusOf(runc.Status), Pid = runc.Pid };
        }

        // Stopped: conmon writes the exit file a moment after runc sees the process gone.
        var exit = ReadExit(id);
        if (exit is null && runc is not null)
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(TimeSpan.FromSeconds(5));
            while (exit is null && IsMonitorAlive(files) && !wait.IsCancellationRequested)
            {
                await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
                exit = ReadExit(id);
            }

            cancellationToken.ThrowIfCancellationRequested();
        }

        if (exit is not null)
        {
            return Stopped(exit);
        }

        if (runc is null && !Directory.Exists(files.PersistDir))
        {
            return null;
        }

        return new ContainerRuntimeState { Id = id, Status = ContainerRuntimeStatus.Stopped, OomKilled = File.Exists(files.OomFile) };
    }

    private static ContainerRuntimeState Stopped(ContainerExit exit) =>
        new() { Id = exit.Id, Status = ContainerRuntimeStatus.Stopped, ExitCode = exit.ExitCode, FinishedAt = exit.FinishedAt, OomKilled = exit.OomKilled };

    /// <summary>The exit conmon recorded for <paramref name="id"/>; null when there is none (yet).</summary>
    private ContainerExit? ReadExit(string id)
    {
        var files = Files(id);
        try
        {
            var info = new FileInfo(files.ExitFile);
            if (!info.Exists)
            {
                return null;
            }

            string text = File.ReadAllText(files.ExitFile).Trim();
            if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int code))
            {
                return null;
            }

            return new ContainerExit(id, code, new DateTimeOffset(info.LastWriteTimeUtc), File.Exists(files.OomFile));
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The container's conmon, if it still runs: the pid file's process, checked to be conmon for this id (pids are reused).</summary>
    private static int MonitorPid(ContainerFiles files)
    {
        int pid = ContainerFiles.ReadPid(files.ConmonPidFile);
        return pid > 0 && IsConmonOf(pid, files.Id) ? pid : 0;
    }

    private static bool IsMonitorAlive(ContainerFiles files) => MonitorPid(files) > 0;

    internal static bool IsConmonOf(int pid, string id)
    {
        string[] argv;
        try
        {
            argv = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }

        if (argv.Length == 0 || !Path.GetFileName(argv[0]).Contains("conmon", StringComparison.Ordinal))
        {
            return false;
        }

        for (int i = 0; i + 1 < argv.Length; i++)
        {
            if (argv[i] == "-c" && argv[i + 1] == id)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Waits for the container's conmon to exit; kills it when it outstays <paramref name="limit"/>.</summary>
    private async Task WaitForMonitorAsync(ContainerFiles files, TimeSpan limit, CancellationToken cancellationToken)
    {
        int pid = MonitorPid(files);
        if (pid == 0)
        {
            return;
        }

        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(limit);
        try
        {
            await ChildProcess.WaitForExitAsync(pid, wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            if (IsConmonOf(pid, files.Id))
            {
                RuntimeLog.MonitorKilled(_logger, pid, files.Id);
                ChildProcess.SignalGroupOf(pid, Signals.SIGKILL);
                await ChildProcess.WaitForExitAsync(pid, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Everything conmon and this driver left for a container, in its folders and the bundle. Idempotent.</summary>
    private static void RemoveFiles(ContainerFiles files, string? bundle)
    {
        File.Delete(files.ExitFile);
        if (File.Exists(files.AttachLink) || new FileInfo(files.AttachLink).LinkTarget is not null)
        {
            File.Delete(files.AttachLink);
        }

        if (bundle is not null && Directory.Exists(bundle))
        {
            foreach (var name in ContainerFiles.ConmonBundleFiles)
            {
                File.Delete(Path.Combine(bundle, name));
            }
        }

        try
        {
            Directory.Delete(files.PersistDir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Removed already (a second delete of the same container).
        }
    }
}
