using System.Diagnostics;
using System.Text.Json.Nodes;
using Crid.Linux;
using Runtime.V1;

namespace Crid.Bench;

/// <summary>
/// A pod with one container started, RunPodSandbox + CreateContainer + StartContainer of a pulled
/// busybox image through the daemon, against its floor in the same run: <c>runc create</c> +
/// <c>runc start</c> of a ready bundle of the same root file system, one of each in turn (taking
/// turns at going first). What crid adds: the pod's namespaces, the image lookup and hold, the
/// overlay mount, the spec, conmon and the records on disk. Then the teardown, timed the same
/// way: StopContainer + RemoveContainer + StopPodSandbox + RemovePodSandbox against
/// <c>runc kill</c> + <c>runc delete</c> of the floor's container plus the removal of a pinned
/// namespace set (the sandbox floor's).
/// </summary>
internal static class ContainerBench
{
    private const string Runc = "/usr/sbin/runc";

    /// <summary>
    /// The pause before each start. <c>runc create</c> moves the container's first process into its
    /// cgroups, and a move into a cgroup (a write to cgroup.procs) waits for an RCU grace period
    /// unless another move happened within about one: measured here, 6 to 9 ms after 50 to 200 ms
    /// of quiet, 0.01 ms within 5 ms of the last move. Started right after crid's container, the
    /// floor's <c>runc create</c> skipped that wait (its cgroup step took 0.8 ms instead of 7 to
    /// 12), paid for by crid's container; after a pause, both pay it, as either does on an
    /// otherwise quiet node. (The kernel's favordynmods cgroup mount option is made to
    /// remove that wait: a host's choice, not measured here, see README.)
    /// </summary>
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(60);

    /// <summary>The samples of each measured phase, and of each call within the two starts.</summary>
    internal sealed record Results(Samples Crid, Samples Runc, Samples Teardown, Samples TeardownFloor,
        Samples Run, Samples Create, Samples Start, Samples RuncCreate, Samples RuncStart);

    public static async Task<Results> MeasureAsync(DaemonUnderTest daemon, string dir, int iterations, int warmup, Progress progress, CancellationToken ct,
        Func<string, Task>? whileServed = null)
    {
        Directory.CreateDirectory(dir);
        var host = $"127.0.0.1:{ImagePulls.FreePort()}";
        using var registry = ImagePulls.StartRegistry(dir, host);
        var runcRoot = Path.Combine(dir, "runc");
        var cgroup = "/crid-bench-floor-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            await ImagePulls.WaitForAsync(host, ct);
            var layout = Path.Combine(dir, "layout");
            ImagePulls.WriteBusyboxLayout(layout);
            var policy = Path.Combine(dir, "policy.json");
            File.WriteAllText(policy, "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}");
            await ImagePulls.RunAsync("/usr/bin/skopeo", ["--policy", policy, "copy", "--quiet", "--dest-tls-verify=false", $"oci:{layout}:busybox", $"docker://{host}/bench/ctr:1"], ct);
            var bundle = await BundleAsync(Path.Combine(dir, "bundle"), layout, cgroup, ct);

            using var channel = DaemonUnderTest.CreateChannel(daemon.Socket);
            var runtime = new RuntimeService.RuntimeServiceClient(channel);
            var images = new ImageService.ImageServiceClient(channel);
            var image = $"{host}/bench/ctr:1";
            await images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = image } }, cancellationToken: ct);
            var r = new Results(new(), new(), new(), new(), new(), new(), new(), new(), new());
            for (var i = 0; i < warmup + iterations; i++)
            {
                ct.ThrowIfCancellationRequested();
                var pod = new PodSandboxConfig
                {
                    Metadata = new PodSandboxMetadata { Name = $"ctr-{i}", Namespace = "bench", Uid = $"bench-ctr-{i}" },
                    LogDirectory = Path.Combine(dir, "logs", i.ToString()),
                    Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Pid = NamespaceMode.Container } } },
                };
                var container = new ContainerConfig
                {
                    Metadata = new ContainerMetadata { Name = "sleep" },
                    Image = new ImageSpec { Image = image },
                    Command = { "sleep", "100000" },
                    LogPath = "sleep.log",
                    Linux = new LinuxContainerConfig(),
                };
                // Each start begins on a quiet machine (Settle), and the two take turns going first, so
                // that neither runs on what the other left: a start right after the other's finishes
                // the work its teardown left the kernel (cgroups and network namespaces released in
                // its workers) or skips a cost the other just paid (see Settle). Each call is timed
                // too (the rows below the ratio).
                string podId = "", id = "";
                double runMs = 0, createMs = 0, startMs = 0, runcCreateMs = 0, runcStartMs = 0;
                async Task CridAsync()
                {
                    await Task.Delay(Settle, ct);
                    var watch = Stopwatch.StartNew();
                    podId = (await runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = pod }, cancellationToken: ct)).PodSandboxId;
                    runMs = watch.Elapsed.TotalMilliseconds;
                    id = (await runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = container, SandboxConfig = pod }, cancellationToken: ct)).ContainerId;
                    createMs = watch.Elapsed.TotalMilliseconds - runMs;
                    await runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id }, cancellationToken: ct);
                    startMs = watch.Elapsed.TotalMilliseconds - runMs - createMs;
                }
                async Task FloorAsync()
                {
                    await Task.Delay(Settle, ct);
                    var watch = Stopwatch.StartNew();
                    await RuncAsync(["--root", runcRoot, "create", "--bundle", bundle, "floor"]);
                    runcCreateMs = watch.Elapsed.TotalMilliseconds;
                    await RuncAsync(["--root", runcRoot, "start", "floor"]);
                    runcStartMs = watch.Elapsed.TotalMilliseconds - runcCreateMs;
                }
                if (i % 2 == 0)
                {
                    await CridAsync();
                    await FloorAsync();
                }
                else
                {
                    await FloorAsync();
                    await CridAsync();
                }

                // The teardown, as kubelet does it: the container stopped at once (sleep as pid 1
                // ignores SIGTERM), removed, then the pod.
                var watch = Stopwatch.StartNew();
                await runtime.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 0 }, cancellationToken: ct);
                await runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id }, cancellationToken: ct);
                await runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }, cancellationToken: ct);
                await runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }, cancellationToken: ct);
                var teardownMs = watch.Elapsed.TotalMilliseconds;

                // Its floor: runc kill + runc delete (--force: the SIGKILLed process may not be reaped
                // yet, and a plain delete refuses a container not yet stopped), then the pins' removal.
                var pins = PodNamespaces.Create(new PodNamespacesRequest
                {
                    NamespacesDir = Path.Combine(dir, "ns"),
                    Namespaces = [new("net", false), new("ipc", false), new("uts", false), new("user", true)],
                    LoopbackUp = true,
                    Hostname = $"teardown-{i}",
                });
                watch.Restart();
                await RuncAsync(["--root", runcRoot, "kill", "floor", "KILL"]);
                await RuncAsync(["--root", runcRoot, "delete", "--force", "floor"]);
                for (var p = pins.Pins.Count - 1; p >= 0; p--)
                    pins.Pins[p].Remove();
                var teardownFloorMs = watch.Elapsed.TotalMilliseconds;
                if (i >= warmup)
                {
                    r.Crid.Add(runMs + createMs + startMs);
                    r.Runc.Add(runcCreateMs + runcStartMs);
                    r.Teardown.Add(teardownMs);
                    r.TeardownFloor.Add(teardownFloorMs);
                    r.Run.Add(runMs);
                    r.Create.Add(createMs);
                    r.Start.Add(startMs);
                    r.RuncCreate.Add(runcCreateMs);
                    r.RuncStart.Add(runcStartMs);
                }
                progress.Tick("pod + container against runc create + start", i + 1, warmup + iterations);
            }
            // The phases that need the image in a registry, while it still serves.
            if (whileServed is not null)
                await whileServed(image);
            return r;
        }
        finally
        {
            if (Directory.Exists(Path.Combine(runcRoot, "floor")))
                await RuncAsync(["--root", runcRoot, "delete", "--force", "floor"]);
            foreach (var controller in Directory.Exists("/sys/fs/cgroup") ? Directory.EnumerateDirectories("/sys/fs/cgroup") : [])
            {
                try { Directory.Delete(controller + cgroup); }
                catch (IOException) { }
            }
            if (!registry.HasExited)
                registry.Kill();
            await registry.WaitForExitAsync(CancellationToken.None);
        }
    }

    /// <summary>The image's layer unpacked as a rootfs, with runc's default spec running sleep in a cgroup of its own.</summary>
    private static async Task<string> BundleAsync(string bundle, string layout, string cgroup, CancellationToken ct)
    {
        var rootfs = Directory.CreateDirectory(Path.Combine(bundle, "rootfs")).FullName;
        var layer = Directory.GetFiles(Path.Combine(layout, "blobs", "sha256")).Select(f => new FileInfo(f)).OrderByDescending(f => f.Length).First();
        await ImagePulls.RunAsync("tar", ["-xzf", layer.FullName, "-C", rootfs], ct);
        await ImagePulls.RunAsync(Runc, ["spec", "--bundle", bundle], ct);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(bundle, "config.json")))!.AsObject();
        config["process"]!["terminal"] = false;
        config["process"]!["args"] = new JsonArray("sleep", "100000");
        config["linux"]!["cgroupsPath"] = cgroup;
        File.WriteAllText(Path.Combine(bundle, "config.json"), config.ToJsonString());
        return bundle;
    }

    private static async Task RuncAsync(string[] args)
    {
        var child = ChildProcess.Start(new SpawnOptions { Executable = Runc, Args = [Runc, .. args] });
        var exit = await child.Exited;
        if (exit.Code != 0)
            throw new InvalidOperationException($"runc {string.Join(' ', args)}: {exit}");
    }
}
