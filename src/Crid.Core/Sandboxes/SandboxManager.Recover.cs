using System.Diagnostics;
using Crid.Linux;

namespace Crid.Core.Sandboxes;

public sealed partial class SandboxManager
{
    /// <summary>
    /// Rebuilds the store after a (re)start: every record is loaded, READY only while its pins are
    /// still mounted; names are reserved again; folders without a record (a Run or Remove cut short)
    /// are deleted, and so are temporary files of interrupted writes; and crid pins that no record knows are removed, each with a log line.
    /// </summary>
    public void Recover()
    {
        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(SandboxesDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var known = new HashSet<string>(StringComparer.Ordinal);
        var ready = 0;
        foreach (var dir in Directory.EnumerateDirectories(SandboxesDir))
        {
            var record = Path.Combine(dir, SandboxRecord.FileName);
            Sandbox sandbox;
            try
            {
                sandbox = SandboxRecord.Deserialize(File.ReadAllBytes(record), dir);
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
            foreach (var path in sandbox.Pins.Values)
                known.Add(path);
            if (sandbox.State == SandboxState.Ready && !StillPinned(sandbox))
            {
                SandboxLog.LostPins(_log, sandbox.Id);
                StopLocked(sandbox);
            }
            if (sandbox.State == SandboxState.Ready)
                ready++;
            _store.ReserveName(sandbox.Name, sandbox.Id);
            _store.Add(sandbox);
        }
        RemoveOrphanPins(known);
        SandboxLog.Recovered(_log, _store.Count, ready, watch.Elapsed.TotalMilliseconds);
    }

    /// <summary>
    /// Ready means every pin still holds its namespace and, with a shared pid namespace, its PID 1
    /// still lives: a pid namespace whose init died takes no new processes (pid_namespaces(7)).
    /// </summary>
    private static bool StillPinned(Sandbox sandbox)
    {
        if (!sandbox.Pins.Values.All(p => PinnedNamespace.FromPath(p).IsMounted))
            return false;
        if (sandbox.InfraPid == 0 || !sandbox.Pins.TryGetValue("pid", out var pidPin))
            return true;
        try
        {
            return new FileInfo($"/proc/{sandbox.InfraPid}/ns/pid").LinkTarget == $"pid:[{PinnedNamespace.FromPath(pidPin).Inode}]"
                && !File.ReadAllText($"/proc/{sandbox.InfraPid}/stat").Split(')')[^1].TrimStart().StartsWith('Z');
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// Only names shaped like crid's uuids are touched: the namespaces dir may be /var/run, where
    /// `ip netns add` and other runtimes keep pins of their own.
    /// </summary>
    private void RemoveOrphanPins(HashSet<string> known)
    {
        foreach (var pin in PinnedNamespace.List(_options.NamespacesDir))
        {
            if (known.Contains(pin.Path) || !Guid.TryParseExact(Path.GetFileName(pin.Path), "D", out _))
                continue;
            if (pin.Type == "pid")
                KillPidNamespace(pin);
            // The infra process is born in the pod's uts (and net, ipc) namespace: a Run killed before
            // the pid pin was mounted left it with no other trace.
            foreach (var pid in OrphanHelpers.KillInfraIn(pin))
                SandboxLog.OrphanInfraKilled(_log, pid, pin.Path);
            pin.Remove();
            SandboxLog.OrphanPinRemoved(_log, pin.Path);
        }
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
