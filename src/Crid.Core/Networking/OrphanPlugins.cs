using System.Diagnostics;
using System.Text;

namespace Crid.Core.Networking;

/// <summary>
/// CNI plugins a killed daemon left running. A plugin is a process of its own: SIGKILL the daemon in
/// the middle of an ADD and the plugin (and the IPAM plugin it runs) goes on, and may finish its ADD
/// after the restarted daemon ran the DEL meant to undo it, leaking what it made. So before that DEL,
/// every process still working for the sandbox (CNI_CONTAINERID, which is the sandbox's 64-hex id,
/// in its environment) is killed and waited for; the DEL then cleans up whatever it had done.
/// </summary>
internal static class OrphanPlugins
{
    /// <summary>Kills the processes whose environment holds CNI_CONTAINERID=<paramref name="containerId"/>; returns their pids.</summary>
    public static IReadOnlyList<int> Kill(string containerId)
    {
        var marker = Encoding.ASCII.GetBytes($"CNI_CONTAINERID={containerId}\0");
        var self = Environment.ProcessId;
        var killed = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == self)
                continue;
            byte[] environ;
            try { environ = File.ReadAllBytes(Path.Combine(dir, "environ")); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            // The entry may be the first one, with no NUL before it.
            var at = environ.AsSpan().IndexOf(marker);
            if (at < 0 || (at > 0 && environ[at - 1] != 0))
                continue;
            try
            {
                using var process = Process.GetProcessById(pid);
                process.Kill();
                killed.Add(pid);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception) { }
        }
        // Gone, not just signalled: a plugin between two syscalls must not write after the DEL.
        var deadline = Stopwatch.StartNew();
        foreach (var pid in killed)
        {
            while (IsAlive(pid) && deadline.Elapsed < TimeSpan.FromSeconds(5))
                Thread.Sleep(5);
        }
        return killed;
    }

    /// <summary>Running, not a zombie (a dead child of init waits to be reaped, and writes nothing).</summary>
    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return !stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
