using System.Diagnostics;
using System.Text.Json.Nodes;
using Crid.Core.Containers;

namespace Crid.Runtime.Tests;

/// <summary>
/// A driver over folders of the test's own (a runc root, conmon's folders, logs, bundles with a
/// busybox-static rootfs), under a random name. Disposing it removes every container the test
/// left, then asserts the machine is as it was: no conmon or runc process, no runc state, no
/// cgroup, no file.
/// </summary>
internal sealed class RuntimeHost : IAsyncDisposable
{
    private static readonly Lazy<string> BaseSpec = new(MakeBaseSpec);
    private readonly List<string> _ids = [];

    public RuntimeHost()
    {
        RequireRoot();
        foreach (var tool in new[] { "/usr/bin/conmon", "/usr/sbin/runc", "/bin/busybox" })
        {
            Assert.True(File.Exists(tool), $"{tool} is missing: `make test` installs conmon, runc and busybox-static (TEST_DEBS)");
        }

        Tag = "crt" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();

        // Short: the attach socket's path <state>/attach/<id>/attach must fit in 108 bytes.
        Root = Directory.CreateDirectory(Path.Combine("/tmp", Tag)).FullName;
        Logs = Directory.CreateDirectory(Path.Combine(Root, "logs")).FullName;
        Options = new RuntimeOptions { RuntimeRoot = Path.Combine(Root, "runc"), StateDir = Path.Combine(Root, "s") };
        Runtime = new ConmonRuntime(Options);
    }

    /// <summary>The random part of every name this host makes (folders, cgroups).</summary>
    public string Tag { get; }

    public string Root { get; }

    public string Logs { get; }

    public RuntimeOptions Options { get; }

    public ConmonRuntime Runtime { get; private set; }

    /// <summary>A driver gone and a new one over the same folders: what a daemon restart does.</summary>
    public ConmonRuntime Restart()
    {
        Runtime.Dispose();
        Runtime = new ConmonRuntime(Options);
        return Runtime;
    }

    /// <summary>A bundle for <paramref name="id"/> running <paramref name="args"/>; <paramref name="adjust"/> edits config.json.</summary>
    public string Bundle(string id, string[] args, Action<JsonObject>? adjust = null, bool terminal = false)
    {
        string bundle = Path.Combine(Root, "b", id);
        string bin = Directory.CreateDirectory(Path.Combine(bundle, "rootfs", "bin")).FullName;
        File.Copy("/bin/busybox", Path.Combine(bin, "busybox"));
        foreach (var applet in new[] { "sh", "cat", "echo", "sleep", "true", "false", "head", "tr", "yes", "stty", "tty", "ps", "tail", "kill", "dd" })
        {
            File.CreateSymbolicLink(Path.Combine(bin, applet), "busybox");
        }

        var spec = JsonNode.Parse(BaseSpec.Value)!.AsObject();
        spec["root"] = new JsonObject { ["path"] = "rootfs", ["readonly"] = false };
        var process = spec["process"]!.AsObject();
        process["terminal"] = terminal;
        process["args"] = new JsonArray([.. args.Select(a => (JsonNode)JsonValue.Create(a))]);
        process["env"] = new JsonArray("PATH=/bin", "TERM=xterm");

        // A cgroup of our own per container, named with the host's random tag.
        spec["linux"]!["cgroupsPath"] = $"/{Tag}-{id}";
        adjust?.Invoke(spec);
        File.WriteAllText(Path.Combine(bundle, "config.json"), spec.ToJsonString());
        _ids.Add(id);
        return bundle;
    }

    public CreateContainerRequest Request(string id, string bundle, bool terminal = false) => new()
    {
        Id = id,
        BundlePath = bundle,
        LogPath = LogPath(id),
        Terminal = terminal,
    };

    public string LogPath(string id) => Path.Combine(Logs, id + ".log");

    /// <summary>Creates and starts; returns the created container.</summary>
    public async Task<CreatedContainer> RunAsync(string id, string[] args, Action<JsonObject>? adjust = null)
    {
        var created = await Runtime.CreateAsync(Request(id, Bundle(id, args, adjust)), Timeout());
        await Runtime.StartAsync(id, Timeout());
        return created;
    }

    /// <summary>
    /// Waits for the driver to raise <paramref name="id"/>'s exit, and checks the watcher's part: the
    /// event came within a second of conmon writing the exit file (its time is FinishedAt), however
    /// slowly a loaded machine let conmon get there.
    /// </summary>
    public static async Task<ContainerExit> ExitOfAsync(ConmonRuntime runtime, string id, Func<Task> trigger, TimeSpan within)
    {
        var seen = new TaskCompletionSource<(ContainerExit Exit, DateTimeOffset At)>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Handler(ContainerExit e)
        {
            if (e.Id == id)
            {
                seen.TrySetResult((e, DateTimeOffset.UtcNow));
            }
        }

        runtime.ContainerExited += Handler;
        try
        {
            await trigger();
            var (exit, at) = await seen.Task.WaitAsync(within + TimeSpan.FromSeconds(10));
            Assert.True(at - exit.FinishedAt < within, $"the exit of {id} was raised {(at - exit.FinishedAt).TotalMilliseconds:F0} ms after conmon recorded it");
            return exit;
        }
        finally
        {
            runtime.ContainerExited -= Handler;
        }
    }

    /// <summary>
    /// Whether <paramref name="pid"/> is gone: an exited conmon is init's to reap (it detached),
    /// so its zombie may be seen for a moment.
    /// </summary>
    public static async Task<bool> GoneAsync(int pid)
    {
        for (int i = 0; i < 100; i++)
        {
            try
            {
                string status = File.ReadAllText($"/proc/{pid}/status");
                if (!status.Contains("State:\tZ", StringComparison.Ordinal))
                {
                    return false; // alive
                }
            }
            catch (IOException)
            {
                return true;
            }

            await Task.Delay(20);
        }

        return false;
    }

    public static CancellationToken Timeout(int seconds = 60) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;

    /// <summary>Processes whose command line names this host's folder (conmon, runc, a container's init holds none).</summary>
    public List<string> OurProcesses()
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                string cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(Root, StringComparison.Ordinal))
                {
                    found.Add($"{pid}: {cmdline}");
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        return found;
    }

    /// <summary>The command lines of the live processes in a container's cgroup (zombies have none).</summary>
    public List<string> LiveProcessesOf(string id)
    {
        var found = new List<string>();
        foreach (var line in File.ReadLines($"/sys/fs/cgroup/pids/{Tag}-{id}/cgroup.procs"))
        {
            try
            {
                string cmdline = File.ReadAllText($"/proc/{line.Trim()}/cmdline").Replace('\0', ' ').Trim();
                if (cmdline.Length > 0)
                {
                    found.Add(cmdline);
                }
            }
            catch (IOException)
            {
            }
        }

        return found;
    }

    /// <summary>cgroup folders (any hierarchy) named with this host's tag.</summary>
    public List<string> OurCgroups()
    {
        var found = new List<string>();
        foreach (var hierarchy in Directory.EnumerateDirectories("/sys/fs/cgroup"))
        {
            foreach (var dir in Directory.EnumerateDirectories(hierarchy))
            {
                if (Path.GetFileName(dir).StartsWith(Tag, StringComparison.Ordinal))
                {
                    found.Add(dir);
                }
            }
        }

        return found;
    }

    public async ValueTask DisposeAsync()
    {
        // What the test left running is removed through the driver, as the lifecycle would.
        foreach (var id in _ids)
        {
            try
            {
                await Runtime.DeleteAsync(id, Timeout());
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"cleanup of {id}: {e.Message}");
            }
        }

        Runtime.Dispose();
        var processes = OurProcesses();
        var cgroups = OurCgroups();
        var runcState = Directory.Exists(Options.RuntimeRoot) ? Directory.GetFileSystemEntries(Options.RuntimeRoot) : [];
        var stateFiles = Directory.GetFiles(Options.StateDir, "*", SearchOption.AllDirectories)
            .Concat(Directory.GetDirectories(Path.Combine(Options.StateDir, "containers")))
            .Concat(Directory.GetFileSystemEntries(Path.Combine(Options.StateDir, "attach")))
            .ToList();

        // Last resort, so a failed test does not leave the machine dirty for the next one.
        foreach (var p in processes)
        {
            Process.Start("kill", ["-9", p.Split(':')[0]])?.WaitForExit();
        }

        foreach (var id in _ids)
        {
            Process.Start("/usr/sbin/runc", ["--root", Options.RuntimeRoot, "delete", "-f", id])?.WaitForExit();
        }

        foreach (var cg in OurCgroups())
        {
            try
            {
                Directory.Delete(cg);
            }
            catch (IOException)
            {
            }
        }

        Directory.Delete(Root, recursive: true);
        Assert.True(processes.Count == 0, "processes left: " + string.Join("; ", processes));
        Assert.True(cgroups.Count == 0, "cgroups left: " + string.Join("; ", cgroups));
        Assert.True(runcState.Length == 0, "runc state left: " + string.Join("; ", runcState));
        Assert.True(stateFiles.Count == 0, "driver files left: " + string.Join("; ", stateFiles));
    }

    private static void RequireRoot() =>
        Assert.True(Environment.UserName == "root",
            "Crid.Runtime tests run real containers with runc and conmon: run them as root (this VM and CI do).");

    /// <summary>`runc spec` of the host's runc: the OCI defaults runc itself proposes.</summary>
    private static string MakeBaseSpec()
    {
        string dir = Directory.CreateTempSubdirectory("crid-spec-").FullName;
        try
        {
            using var p = Process.Start(new ProcessStartInfo("/usr/sbin/runc", ["spec", "--bundle", dir]) { RedirectStandardError = true })!;
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, "runc spec failed: " + p.StandardError.ReadToEnd());
            return File.ReadAllText(Path.Combine(dir, "config.json"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
