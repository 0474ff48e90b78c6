using System.Text;
using Crid.Linux;
using Microsoft.Extensions.Logging;

namespace Crid.Core.Networking;

/// <summary>What the config folder holds right now: the pod network, or why there is none.</summary>
internal sealed record CniConfigState(CniNetwork? Network, string Problem);

/// <summary>
/// The CNI config folder. libcni's rule picks the network: the first file by name ending in .conf,
/// .conflist or .json that is a valid config. A network installed after the daemon started (the usual
/// order on a new node: the CNI DaemonSet writes its file later) must be seen without a restart, so
/// every look first compares a cheap fingerprint (names, sizes, mtimes) and re-reads only on change.
/// A config whose plugins are not all installed is skipped like a broken file (every RunPodSandbox
/// would fail on it); the plugin folders' mtimes are part of the fingerprint, so installing the
/// missing plugin later is seen at the next look.
/// </summary>
/// <remarks>
/// The fingerprint costs a folder listing and a stat per file and plugin folder, on every
/// RunPodSandbox (about 50 µs on the benchmark machine). So the folders are also watched with
/// inotify, and a look that finds no event queued (one read(2)) knows nothing changed; any event,
/// or a watch that cannot be trusted (a folder missing or a symlink, a config that is a symlink
/// whose target may change elsewhere, a lost event), falls back to the fingerprint, which sees what
/// it saw before.
/// </remarks>
internal sealed class CniConfigDir(string dir, IReadOnlyList<string> binDirs, ILogger log)
{
    private static readonly string[] Extensions = [".conf", ".conflist", ".json"];
    private readonly Lock _lock = new();
    private string? _fingerprint;
    private CniConfigState _state = new(null, "not read yet");

    public string Dir => dir;

    private const uint FolderEvents = Inotify.Create | Inotify.Delete | Inotify.MovedFrom | Inotify.MovedTo | Inotify.Attrib
        | Inotify.Modify | Inotify.CloseWrite | Inotify.DeleteSelf | Inotify.MoveSelf;

    private Inotify? _watch;

    public CniConfigState Current()
    {
        lock (_lock)
        {
            if (_watch is { } watch)
            {
                if (!watch.Drain(out var lost))
                    return _state;
                if (lost)
                    DropWatch();
            }
            // Armed before the look: a change made during it is an event for the next one.
            _watch ??= TryWatch();
            var files = ConfigFiles(out var fingerprint);
            if (files.Any(f => f.LinkTarget is not null))
                DropWatch();
            if (fingerprint == _fingerprint)
                return _state;
            _state = Load(files);
            _fingerprint = fingerprint;
            return _state;
        }
    }

    private void DropWatch()
    {
        _watch?.Dispose();
        _watch = null;
    }

    /// <summary>A watch of the config folder and the plugin folders, or null when one cannot be trusted.</summary>
    private Inotify? TryWatch()
    {
        foreach (var folder in binDirs.Prepend(dir))
        {
            // A folder that does not exist yet would appear unseen; a symlink could be pointed elsewhere unseen.
            if (!Directory.Exists(folder) || new DirectoryInfo(folder).LinkTarget is not null)
                return null;
        }
        Inotify? watch = null;
        try
        {
            watch = new Inotify();
            foreach (var folder in binDirs.Prepend(dir))
                watch.Watch(folder, FolderEvents);
            return watch;
        }
        catch (SyscallException)
        {
            // Out of watches or descriptors: the fingerprint alone still sees every change.
            watch?.Dispose();
            return null;
        }
    }

    private List<FileInfo> ConfigFiles(out string fingerprint)
    {
        var files = new List<FileInfo>();
        var text = new StringBuilder();
        // Checked first, not left to the exception: with no CNI installed this runs on every
        // RunPodSandbox and Status, and a throw per call is measurable there.
        if (!Directory.Exists(dir))
        {
            fingerprint = "missing";
            return files;
        }
        try
        {
            foreach (var f in new DirectoryInfo(dir).EnumerateFiles())
            {
                if (Extensions.Contains(f.Extension, StringComparer.Ordinal))
                    files.Add(f);
            }
        }
        catch (DirectoryNotFoundException)
        {
            fingerprint = "missing";
            return files;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            fingerprint = "unreadable: " + e.Message;
            return files;
        }
        files.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        foreach (var f in files)
            text.Append(f.Name).Append('\0').Append(f.Length).Append('\0').Append(f.LastWriteTimeUtc.Ticks).Append('\n');
        foreach (var bin in binDirs)
            text.Append(bin).Append('\0').Append(Directory.Exists(bin) ? Directory.GetLastWriteTimeUtc(bin).Ticks : 0).Append('\n');
        fingerprint = text.ToString();
        return files;
    }

    private CniConfigState Load(List<FileInfo> files)
    {
        if (!Directory.Exists(dir))
        {
            NetworkLog.ConfigDirMissing(log, dir);
            return new CniConfigState(null, $"no CNI network config: {dir} does not exist");
        }
        var skipped = new List<string>();
        foreach (var f in files)
        {
            try
            {
                var network = CniNetwork.Parse(f.FullName, File.ReadAllText(f.FullName));
                foreach (var plugin in network.Plugins)
                {
                    var type = CniNetwork.TypeOf(plugin);
                    if (!binDirs.Any(bin => File.Exists(Path.Combine(bin, type))))
                        throw new FormatException($"plugin \"{type}\" is not installed in {string.Join(":", binDirs)}");
                }
                NetworkLog.ConfigLoaded(log, network.Name, f.FullName, network.Plugins.Count);
                return new CniConfigState(network, "");
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
            {
                NetworkLog.ConfigSkipped(log, f.FullName, e.Message);
                skipped.Add($"{f.Name}: {e.Message}");
            }
        }
        NetworkLog.NoConfig(log, dir);
        return new CniConfigState(null, skipped.Count == 0
            ? $"no CNI network config in {dir}"
            : $"no valid CNI network config in {dir} ({skipped.Count} invalid file(s) skipped: {string.Join("; ", skipped.Take(3))}{(skipped.Count > 3 ? "; ..." : "")})");
    }
}
