using System.Text.Json;
using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// What a daemon leaves on the machine, observed from outside: nsfs mounts, files, reserved names,
/// processes living in a pod's namespaces. The robustness tests compare these before and after.
/// </summary>
internal static class Leaks
{
    /// <summary>Every entry under <paramref name="dir"/>, recursively, relative and sorted (folders end in '/').</summary>
    public static List<string> Tree(string dir)
    {
        if (!Directory.Exists(dir))
            return [];
        return Directory.EnumerateFileSystemEntries(dir, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(p => Path.GetRelativePath(dir, p) + (Directory.Exists(p) && !File.Exists(p) ? "/" : ""))
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>The pin files under &lt;ns-dir&gt;/&lt;type&gt;ns/ (the folders themselves may stay).</summary>
    public static List<string> PinFiles(string namespacesDir) =>
        Directory.Exists(namespacesDir)
            ? Directory.EnumerateDirectories(namespacesDir).SelectMany(Directory.EnumerateFiles).Order(StringComparer.Ordinal).ToList()
            : [];

    /// <summary>
    /// The namespaces pinned under <paramref name="dir"/>, as "net:[4026532…]": mountinfo's root field
    /// of an nsfs mount names the namespace, the same text /proc/PID/ns/TYPE links to.
    /// </summary>
    public static HashSet<string> NsfsRoots(string dir)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (dash < 0 || dash + 1 >= fields.Length || fields[dash + 1] != "nsfs")
                continue;
            if (fields[4].StartsWith(dir.TrimEnd('/') + "/", StringComparison.Ordinal))
                result.Add(fields[3].TrimStart('/'));
        }
        return result;
    }

    /// <summary>
    /// True when <paramref name="pid"/> was started by one of <paramref name="daemon"/>'s incarnations:
    /// it works in the daemon's folder, which every test daemon is started in (another test's daemons
    /// have folders of their own) and which crid's infra processes and helper clones inherit.
    /// </summary>
    public static bool StartedBy(int pid, DaemonProcess daemon)
    {
        try
        {
            return new DirectoryInfo($"/proc/{pid}/cwd").LinkTarget == daemon.Dir;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // Gone meanwhile.
        }
    }

    /// <summary>Processes that live in any of the given namespaces: "pid (comm)" each.</summary>
    /// <param name="onlyExe">
    /// count only processes running this executable. A namespace's inode number is reused once it is
    /// freed (lowest first), so namespaces a test saw minutes ago may now be another program's on a
    /// shared machine; crid's own leftovers (infra processes, helper clones) all run the daemon's binary.
    /// </param>
    public static List<string> ProcessesIn(IReadOnlySet<string> namespaces, string? onlyExe = null)
    {
        var found = new List<string>();
        if (namespaces.Count == 0)
            return found;
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid))
                continue;
            foreach (var type in new[] { "net", "pid", "ipc", "uts", "user" })
            {
                string? target;
                try { target = new FileInfo(Path.Combine(proc, "ns", type)).LinkTarget; }
                catch (IOException) { continue; }
                catch (UnauthorizedAccessException) { continue; }
                if (target is not null && namespaces.Contains(target))
                {
                    if (onlyExe is not null)
                    {
                        string? exe;
                        try { exe = new FileInfo(Path.Combine(proc, "exe")).LinkTarget; }
                        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { exe = null; }
                        if (exe != onlyExe)
                            break;
                    }
                    string comm;
                    try { comm = File.ReadAllText(Path.Combine(proc, "comm")).Trim(); }
                    catch (IOException) { comm = "?"; }
                    // A zombie is already dead: it only waits for its parent to reap it.
                    if (!SandboxTests.IsGoneOrZombie(pid))
                        found.Add($"{pid} ({comm}) in {target}");
                    break;
                }
            }
        }
        return found;
    }

    /// <summary>
    /// Live child processes of <paramref name="pid"/> ("pid (comm)"): a daemon with no pod sharing a pid
    /// namespace has none, neither infra process nor helper child.
    /// </summary>
    public static List<string> ChildrenOf(int pid)
    {
        var found = new List<string>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var child))
                continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(proc, "stat"));
                var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (rest[0] != "Z" && int.Parse(rest[1]) == pid)
                    found.Add($"{child} {stat[..(stat.LastIndexOf(')') + 1)]}");
            }
            catch (IOException) { }
        }
        return found;
    }

    /// <summary>Processes that are PID 1 of a pid namespace of their own and live in one of the given namespaces.</summary>
    public static List<int> PidNamespaceInitsIn(IReadOnlySet<string> namespaces)
    {
        var found = new List<int>();
        foreach (var entry in ProcessesIn(namespaces))
        {
            var pid = int.Parse(entry.Split(' ')[0]);
            try
            {
                var nspid = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("NSpid:", StringComparison.Ordinal));
                var ids = nspid?.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
                if (ids is { Length: > 2 } && ids[^1] == "1")
                    found.Add(pid);
            }
            catch (IOException) { }
        }
        return found;
    }

    /// <summary>The daemon's reserved sandbox names, as Status verbose reports them.</summary>
    public static async Task<Dictionary<string, string>> ReservedNamesAsync(DaemonProcess d)
    {
        var status = await d.Runtime.StatusAsync(new StatusRequest { Verbose = true });
        return JsonSerializer.Deserialize<Dictionary<string, string>>(status.Info["reservedNames"])!;
    }

    /// <summary>VmRSS or VmHWM of a process, in KiB.</summary>
    public static long MemoryKiB(int pid, string field = "VmRSS")
    {
        var line = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }

    /// <summary>
    /// The daemon's state as a whole must hang together: every sandbox folder has a record that parses
    /// and is listed, no temporary file of an interrupted write remains, every READY sandbox's pins are
    /// mounted, and every pin belongs to a listed sandbox. Returns the listed ids.
    /// </summary>
    public static async Task<HashSet<string>> AssertConsistentAsync(DaemonProcess d)
    {
        var listed = (await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items.ToDictionary(p => p.Id);
        var sandboxesDir = Path.Combine(d.StateDir, "sandboxes");
        var folders = Directory.EnumerateDirectories(sandboxesDir).Select(Path.GetFileName).ToHashSet();
        Assert.Equal(listed.Keys.Order(), folders.Order()!);
        foreach (var entry in Tree(sandboxesDir))
            Assert.DoesNotContain(".tmp", entry);
        foreach (var folder in folders)
        {
            var record = Path.Combine(sandboxesDir, folder!, SandboxRecord.FileName);
            Assert.True(File.Exists(record), $"{folder} has no record");
            SandboxRecord.Load(Path.GetDirectoryName(record)!);
        }
        var mounts = Cleanup.NsfsMountsUnder(d.NamespacesDir).ToHashSet();
        var owned = new HashSet<string>(StringComparer.Ordinal);
        foreach (var id in listed.Keys)
        {
            var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true });
            using var info = JsonDocument.Parse(status.Info["info"]);
            foreach (var pin in info.RootElement.GetProperty("pins").EnumerateObject())
            {
                owned.Add(pin.Value.GetString()!);
                if (status.Status.State == PodSandboxState.SandboxReady)
                    Assert.True(mounts.Contains(pin.Value.GetString()!), $"READY sandbox {id} lacks its {pin.Name} pin {pin.Value}");
            }
        }
        foreach (var pin in PinFiles(d.NamespacesDir))
            Assert.True(owned.Contains(pin), $"the pin {pin} belongs to no listed sandbox");
        foreach (var mount in mounts)
            Assert.True(owned.Contains(mount), $"the nsfs mount {mount} belongs to no listed sandbox");
        return listed.Keys.ToHashSet();
    }
}
