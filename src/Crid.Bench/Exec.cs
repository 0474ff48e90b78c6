using System.Diagnostics;
using System.Text.Json.Nodes;
using Crid.Core.Containers;
using Crid.Linux;
using Crid.Runtime;

namespace Crid.Bench;

/// <summary>
/// ExecSync of <c>true</c> through crid's driver (Crid.Runtime, in this process) against its floor,
/// <c>runc exec</c> of the same process spec in the same busybox container, alternating one of each
/// so both see the same machine. What the driver adds: reading the container's spec, the process
/// file, two socket pairs and the collection of the output.
/// </summary>
internal static class ExecBench
{
    public static async Task<(Samples Driver, Samples Runc)?> MeasureAsync(string dir, int iterations, int warmup, Progress progress)
    {
        const string Runc = "/usr/sbin/runc", Conmon = "/usr/bin/conmon", Busybox = "/bin/busybox";
        if (!File.Exists(Runc) || !File.Exists(Conmon) || !File.Exists(Busybox))
        {
            progress.Note($"exec phase skipped: it needs {Runc}, {Conmon} and {Busybox} (make test-deps installs them)");
            return null;
        }

        string tag = "crid-bench-" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
        string bundle = MakeBundle(Path.Combine(dir, "bundle"), Busybox, tag);
        var runtime = new ConmonRuntime(new RuntimeOptions { RuntimeRoot = Path.Combine(dir, "runc"), StateDir = Path.Combine(dir, "s"), RuntimePath = Runc, ConmonPath = Conmon });
        try
        {
            await runtime.CreateAsync(new CreateContainerRequest { Id = "exec", BundlePath = bundle, LogPath = Path.Combine(dir, "exec.log") }, CancellationToken.None);
            await runtime.StartAsync("exec", CancellationToken.None);
            string process = Path.Combine(dir, "process.json");
            var spec = JsonNode.Parse(File.ReadAllText(Path.Combine(bundle, "config.json")))!["process"]!.DeepClone().AsObject();
            spec["args"] = new JsonArray("true");
            File.WriteAllText(process, spec.ToJsonString());

            var driver = new Samples();
            var floor = new Samples();
            for (var i = 0; i < warmup + iterations; i++)
            {
                var t0 = Stopwatch.GetTimestamp();
                var r = await runtime.ExecSyncAsync(new ExecSyncRequest { Id = "exec", Command = ["true"] }, CancellationToken.None);
                var t1 = Stopwatch.GetTimestamp();
                var child = ChildProcess.Start(new SpawnOptions { Executable = Runc, Args = [Runc, "--root", Path.Combine(dir, "runc"), "exec", "--process", process, "exec"] });
                var exit = await child.Exited;
                var t2 = Stopwatch.GetTimestamp();
                if (r.ExitCode != 0 || exit.Code != 0)
                    throw new InvalidOperationException($"exec of true failed: driver {r.ExitCode}, runc {exit}");
                if (i >= warmup)
                {
                    driver.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                    floor.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
                }
                progress.Tick("ExecSync against runc exec", i + 1, warmup + iterations);
            }
            return (driver, floor);
        }
        finally
        {
            await runtime.DeleteAsync("exec", CancellationToken.None);
            runtime.Dispose();
        }
    }

    /// <summary>A busybox-static rootfs and runc's own default spec, running sleep in a cgroup named with <paramref name="tag"/>.</summary>
    private static string MakeBundle(string bundle, string busybox, string tag)
    {
        var bin = Directory.CreateDirectory(Path.Combine(bundle, "rootfs", "bin")).FullName;
        File.Copy(busybox, Path.Combine(bin, "busybox"));
        foreach (var applet in new[] { "sh", "sleep", "true" })
            File.CreateSymbolicLink(Path.Combine(bin, applet), "busybox");
        using (var spec = Process.Start(new ProcessStartInfo("/usr/sbin/runc", ["spec", "--bundle", bundle]) { RedirectStandardError = true })!)
        {
            spec.WaitForExit();
            if (spec.ExitCode != 0)
                throw new InvalidOperationException("runc spec failed: " + spec.StandardError.ReadToEnd());
        }
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(bundle, "config.json")))!.AsObject();
        config["process"]!["terminal"] = false;
        config["process"]!["args"] = new JsonArray("sleep", "100000");
        config["root"] = new JsonObject { ["path"] = "rootfs", ["readonly"] = false };
        config["linux"]!["cgroupsPath"] = "/" + tag;
        File.WriteAllText(Path.Combine(bundle, "config.json"), config.ToJsonString());
        return bundle;
    }
}
