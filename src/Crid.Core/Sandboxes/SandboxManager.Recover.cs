using System.Diagnostics;
using Crid.Core.Networking;
using Crid.Linux;

namespace Crid.Core.Sandboxes;

public sealed partial class SandboxManager
{
    /// <summary>
    /// Rebuilds the store after a (re)start: every record is loaded, READY only while its pins are
    /// still mounted (and its infra process, watched again, lives); names are reserved again; folders
    /// without a record (a Run or Remove cut short) are deleted, and so are temporary files of
    /// interrupted writes; and pins whose uuid crid recorded for a sandbox that is gone are removed,
    /// each with a log line. A pin crid has no record of is never touched, whatever its name.
    /// </summary>
    public async Task RecoverAsync()
    {
        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(SandboxesDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var intents = _intents.All();
        var live = new HashSet<string>(StringComparer.Ordinal);
        var ready = 0;
        foreach (var dir in Directory.EnumerateDirectories(SandboxesDir))
        {
            Sandbox sandbox;
            try
            {
                sandbox = SandboxRecord.Load(dir);
                if (sandbox.Id != Path.GetFileName(dir))
                    throw new FormatException($"the record names sandbox {sandbox.Id}");
            }
            catch (Exception e) when (e is IOException or FormatException)
            {
                SandboxLog.BrokenSandboxRemoved(_log, dir, e is FileNotFoundException ? "no sandbox record" : e.Message);
                DeleteSandboxDir(dir);
                continue;
            }
            // A write cut short by the crash leaves its temporary file behind (AtomicFiles writes
            // ".<name>.tmp-…" and renames it); the target still has its old content, so the
            // temporary is only litter.
            foreach (var tmp in Directory.EnumerateFiles(dir, ".*.tmp-*"))
                File.Delete(tmp);
            live.Add(sandbox.Uuid);
            // A record written before pins had uuid records: it is crid's all the same.
            if (sandbox.Uuid.Length > 0 && !intents.ContainsKey(sandbox.Uuid))
                _intents.Record(sandbox.Uuid, sandbox.Id);
            if (sandbox.State == SandboxState.Ready && !StillPinned(sandbox))
            {
                SandboxLog.LostPins(_log, sandbox.Id);
                await StopLockedAsync(sandbox).ConfigureAwait(false);
            }
            else if (sandbox.State == SandboxState.NotReady && HasLeftovers(sandbox))
            {
                // A Stop cut short after it marked the sandbox NOTREADY, or a pod whose infra process
                // died: finish the Stop (DEL, pins, shm) now rather than when kubelet asks.
                SandboxLog.StopFinished(_log, sandbox.Id);
                await StopLockedAsync(sandbox).ConfigureAwait(false);
            }
            _names.Reserve(sandbox.Name, sandbox.Id);
            _sandboxes.Add(sandbox);
            if (sandbox.State == SandboxState.Ready)
            {
                WatchInfra(sandbox);
                if (sandbox.State == SandboxState.Ready)
                    ready++;
            }
        }
        await RemoveOrphansAsync(intents, live).ConfigureAwait(false);
        SandboxLog.Recovered(_log, _sandboxes.Count, ready, watch.Elapsed.TotalMilliseconds);
    }

    /// <summary>
    /// Ready means every pin still holds its namespace and, with a shared pid namespace, its PID 1
    /// still lives: a pid namespace whose init died takes no new processes (pid_namespaces(7)).
    /// </summary>
    private static bool StillPinned(Sandbox sandbox)
    {
        if (!sandbox.Pins.Values.All(p => PinnedNamespace.FromPath(p).IsMounted))
            return false;
        var infraPid = sandbox.InfraPid;
        if (infraPid == 0 || !sandbox.Pins.TryGetValue("pid", out var pidPin))
            return true;
        try
        {
            return new FileInfo($"/proc/{infraPid}/ns/pid").LinkTarget == $"pid:[{PinnedNamespace.FromPath(pidPin).Inode}]"
                && !File.ReadAllText($"/proc/{infraPid}/stat").Split(')')[^1].TrimStart().StartsWith('Z');
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>A NOTREADY sandbox that still holds a pin or a network: its Stop was cut short.</summary>
    private static bool HasLeftovers(Sandbox sandbox) =>
        sandbox.Status.Get().Network is { Attached: true }
        || sandbox.Pins.Values.Any(p => PinnedNamespace.FromPath(p).IsMounted);

    /// <summary>
    /// Cleans up after sandboxes that are gone (a Run killed half-way, a Remove cut short): first the
    /// network a Run attached, or was attaching, before its record was written (CNI DEL with the
    /// recorded arguments, while its netns is still pinned, so bridge takes the veth down itself);
    /// then their pins, with the infra processes inside them; then their uuid records. A DEL that
    /// fails keeps its uuid record, so the next start tries again. Only uuids crid recorded before
    /// pinning count: the namespaces dir may be /var/run, where `ip netns add`, cri-o's pinns and
    /// other crids keep uuid-named pins of their own.
    /// </summary>
    private async Task RemoveOrphansAsync(IReadOnlyDictionary<string, PinIntent> intents, HashSet<string> live)
    {
        var owed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (uuid, intent) in intents)
        {
            if (live.Contains(uuid) || intent.Network is not { } network)
                continue;
            // A plugin of an ADD the crash cut short may still be at work: it must not finish after the DEL.
            foreach (var pid in OrphanPlugins.Kill(intent.SandboxId))
                SandboxLog.OrphanPluginKilled(_log, pid, intent.SandboxId);
            try
            {
                await _network.ReleaseAsync(intent.SandboxId, network, CancellationToken.None).ConfigureAwait(false);
                SandboxLog.OrphanNetworkReleased(_log, intent.SandboxId, network.NetworkName);
            }
            catch (Errors.RuntimeFailureException e)
            {
                owed.Add(uuid);
                SandboxLog.OrphanNetworkNotReleased(_log, intent.SandboxId, network.NetworkName, e.Message);
            }
        }
        RemoveOrphanPins(intents, live, owed);
    }

    private void RemoveOrphanPins(IReadOnlyDictionary<string, PinIntent> intents, HashSet<string> live, HashSet<string> owed)
    {
        var foreign = 0;
        foreach (var pin in PinnedNamespace.List(_options.NamespacesDir))
        {
            var uuid = Path.GetFileName(pin.Path);
            if (live.Contains(uuid))
                continue;
            if (!intents.ContainsKey(uuid))
            {
                if (Guid.TryParseExact(uuid, "D", out _))
                    foreign++;
                continue;
            }
            if (pin.Type == "pid")
                KillPidNamespace(pin);
            // The infra process is born in the pod's uts (and net, ipc) namespace: a Run killed before
            // the pid pin was mounted left it with no other trace.
            foreach (var pid in OrphanHelpers.KillInfraIn(pin))
                SandboxLog.OrphanInfraKilled(_log, pid, pin.Path);
            pin.Remove();
            SandboxLog.OrphanPinRemoved(_log, pin.Path);
        }
        foreach (var uuid in intents.Keys)
        {
            if (!live.Contains(uuid) && !owed.Contains(uuid))
                _intents.Remove(uuid);
        }
        if (foreign > 0)
            SandboxLog.ForeignPinsKept(_log, foreign, _options.NamespacesDir);
    }

    /// <summary>An infra process started by a Run that never finished still holds its pid namespace.</summary>
    private void KillPidNamespace(PinnedNamespace pin)
    {
        if (!pin.IsMounted)
            return;
        var inode = $"pid:[{pin.Inode}]";
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid))
                continue;
            try
            {
                if (new FileInfo(Path.Combine(proc, "ns", "pid")).LinkTarget != inode)
                    continue;
            }
            catch (IOException) { continue; }
            catch (UnauthorizedAccessException) { continue; }
            InfraProcess.Kill(pid, pin.Path);
            SandboxLog.OrphanInfraKilled(_log, pid, pin.Path);
            return;
        }
    }
}
