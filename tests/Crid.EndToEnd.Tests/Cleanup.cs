using System.Diagnostics;

namespace Crid.EndToEnd.Tests;

internal static class Cleanup
{
    /// <summary>The nsfs mounts under <paramref name="dir"/>, as findmnt sees them.</summary>
    public static List<string> NsfsMountsUnder(string dir) => MountsUnder(dir, "nsfs");

    /// <summary>Every mount under <paramref name="dir"/>, of one filesystem type or of any, in mountinfo order.</summary>
    public static List<string> MountsUnder(string dir, string? fsType = null)
    {
        var result = new List<string>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (dash < 0 || dash + 1 >= fields.Length || (fsType is not null && fields[dash + 1] != fsType))
                continue;
            var target = fields[4];
            if (target.StartsWith(dir.TrimEnd('/') + "/", StringComparison.Ordinal))
                result.Add(target);
        }
        return result;
    }

    /// <summary>
    /// Last-resort cleanup after a test: unmounts whatever a failed test left under the folder, so one
    /// failure does not leak into the machine, then deletes the tree. Tests assert cleanliness themselves first.
    /// </summary>
    public static async Task RemoveTreeAsync(string dir, string namespacesDir)
    {
        // Pods outlive their daemon by design: a test that failed before removing its sandboxes
        // leaves their infra processes running, found through the namespaces still pinned here.
        foreach (var pid in Leaks.PidNamespaceInitsIn(Leaks.NsfsRoots(dir)))
        {
            try { Signals.Send(pid, Signals.SIGKILL); }
            catch (InvalidOperationException) { }
        }
        // Pins, and the pods' /dev/shm tmpfs: a recursive delete cannot remove a mount point.
        foreach (var mount in MountsUnder(dir).OrderByDescending(m => m.Length))
        {
            using var p = Process.Start("umount", ["-l", mount]);
            await p.WaitForExitAsync();
        }
        try { Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>
    /// Last resort for a runtime root a test's daemon used: containers the test left behind are
    /// deleted through runc (killed, cgroup removed), monitors naming the root are killed, and the
    /// folder goes. Tests assert that nothing was left first; this only keeps a failure from leaking.
    /// </summary>
    public static async Task RemoveRuntimeRootAsync(string root)
    {
        if (!Directory.Exists(root))
            return;
        foreach (var runcRoot in Directory.EnumerateDirectories(root).Select(d => Path.Combine(d, "runc")).Where(Directory.Exists))
        {
            foreach (var id in Directory.EnumerateDirectories(runcRoot).Select(Path.GetFileName))
            {
                using var p = Process.Start("runc", ["--root", runcRoot, "delete", "--force", id!]);
                await p.WaitForExitAsync();
            }
        }
        foreach (var pid in ProcessesNaming(root))
        {
            try { Signals.Send(pid, Signals.SIGKILL); }
            catch (InvalidOperationException) { }
        }
        foreach (var mount in MountsUnder(root).OrderByDescending(m => m.Length))
        {
            using var p = Process.Start("umount", ["-l", mount]);
            await p.WaitForExitAsync();
        }
        try { Directory.Delete(root, recursive: true); }
        catch (IOException) { }
    }

    /// <summary>Processes whose command line names <paramref name="path"/> (conmon names its runtime root and folders).</summary>
    public static List<int> ProcessesNaming(string path)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
                continue;
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Contains(path, StringComparison.Ordinal))
                    found.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return found;
    }

    /// <summary>The cgroup folders named <paramref name="parent"/> (any hierarchy) and below, deepest first.</summary>
    public static List<string> CgroupsUnder(string parent)
    {
        var found = new List<string>();
        foreach (var hierarchy in Directory.EnumerateDirectories("/sys/fs/cgroup"))
        {
            var top = hierarchy + parent;
            if (!Directory.Exists(top))
                continue;
            found.AddRange(Directory.EnumerateDirectories(top, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length));
            found.Add(top);
        }
        return found;
    }

    /// <summary>Removes the (empty) cgroups under <paramref name="parent"/>; the containers in them are gone by now.</summary>
    public static void RemoveCgroups(string parent)
    {
        foreach (var cg in CgroupsUnder(parent))
        {
            try { Directory.Delete(cg); }
            catch (IOException) { }
        }
    }
}
