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
}
