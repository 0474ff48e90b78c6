using System.Text;
using System.Text.RegularExpressions;
using Crid.Images.Tests.Support;
using Crid.Streaming.Tests.Client;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// The container RPCs over the real daemon's socket, with an image pulled from a registry on
/// 127.0.0.1: the seed's experiment, statuses and logs as kubelet reads them, and a daemon
/// SIGKILLed while its containers run and exit. Each test leaves nothing behind.
/// </summary>
public sealed partial class ContainerSocketTests
{
    private const string Image = "registry.example.invalid/e2e/busybox:1.0";

    /// <summary>A daemon whose config remaps the test registry, with the busybox image pulled.</summary>
    internal static async Task<(DockerRegistry Registry, DaemonProcess Daemon, string ImageRef)> StartAsync(params string[] extraArgs)
    {
        var registry = await DockerRegistry.StartAsync();
        try
        {
            var image = TestImage.Build([TestImage.Layer(new TarBuilder().Busybox().Build())]);
            await registry.PushAsync(image, "e2e/busybox:1.0");
            var dir = Directory.CreateTempSubdirectory("crid-e2e-cfg-").FullName;
            var config = Path.Combine(dir, "crid.yaml");
            await File.WriteAllTextAsync(config, $"registries:\n  - {{prefix: registry.example.invalid, location: {registry.Host}, insecure: true}}\n");
            DaemonProcess daemon;
            try
            {
                daemon = await DaemonProcess.StartAsync(["--config", config, .. extraArgs]);
            }
            finally
            {
                Directory.Delete(dir, true);
            }
            await daemon.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = Image } });
            return (registry, daemon, $"registry.example.invalid/e2e/busybox@{image.TopDigest}");
        }
        catch
        {
            await registry.DisposeAsync();
            throw;
        }
    }

    internal static PodSandboxConfig Pod(DaemonProcess d, string name, NamespaceMode pid)
    {
        var config = SandboxTests.Minimal(name, pid);
        config.LogDirectory = Path.Combine(d.Dir, "logs", name);
        return config;
    }

    internal static ContainerConfig Shell(string name, string script) => new()
    {
        Metadata = new ContainerMetadata { Name = name },
        Image = new ImageSpec { Image = Image },
        Command = { "/bin/sh", "-c", script },
        LogPath = name + ".log",
        Labels = { ["role"] = name },
        Annotations = { ["note"] = "kept as given" },
        Linux = new LinuxContainerConfig(),
    };

    internal static async Task<string> RunAsync(DaemonProcess d, string podId, PodSandboxConfig pod, ContainerConfig config)
    {
        var id = (await d.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = config, SandboxConfig = pod })).ContainerId;
        await d.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id });
        return id;
    }

    private static async Task<string> ExecAsync(DaemonProcess d, string id, string script)
    {
        var r = await d.Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { "/bin/sh", "-c", script }, Timeout = 10 });
        Assert.True(r.ExitCode == 0, $"exec {script}: {r.ExitCode} {r.Stderr.ToStringUtf8()}");
        return r.Stdout.ToStringUtf8().Trim();
    }

    internal static async Task<ContainerStatusResponse> StatusAsync(DaemonProcess d, string id, bool verbose = false) =>
        await d.Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = id, Verbose = verbose });

    private static async Task<ContainerStatus> ExitedAsync(DaemonProcess d, string id)
    {
        for (var i = 0; i < 300; i++)
        {
            var s = (await StatusAsync(d, id)).Status;
            if (s.State == ContainerState.ContainerExited)
                return s;
            await Task.Delay(50);
        }
        throw new TimeoutException($"container {id} did not exit");
    }

    private static void Sh(string script)
    {
        using var p = System.Diagnostics.Process.Start("/bin/sh", ["-c", script]);
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, script);
    }

    /// <summary>What a removed pod's containers must never leave on the machine.</summary>
    internal static List<string> Leftovers(DaemonProcess d)
    {
        var found = new List<string>();
        found.AddRange(Cleanup.MountsUnder(d.Dir).Select(m => "mount " + m));
        found.AddRange(Cleanup.ProcessesNaming(d.RuntimeRoot).Where(p => p != d.Process.Id).Select(p => $"process {p}: {File.ReadAllText($"/proc/{p}/cmdline").Replace('\0', ' ')}"));
        found.AddRange(Cleanup.CgroupsUnder(d.CgroupParent).Where(cg => Directory.EnumerateDirectories(cg).Any() || File.ReadAllText(Path.Combine(cg, "cgroup.procs")).Length > 0).Select(cg => "cgroup " + cg));
        var runc = Directory.Exists(d.RuntimeRoot) ? Directory.EnumerateDirectories(d.RuntimeRoot).Select(h => Path.Combine(h, "runc")).Where(Directory.Exists) : [];
        found.AddRange(runc.SelectMany(Directory.EnumerateDirectories).Select(s => "runc state " + s));
        found.AddRange(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "containers")).Select(e => "container folder " + e));
        found.AddRange(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "images", "holds")).Select(e => "image hold " + e));
        return found;
    }

    [Fact]
    public async Task The_seed_experiment_statuses_and_logs_over_the_socket()
    {
        var (registry, d, imageRef) = await StartAsync();
        await using var _ = registry;
        await using var __ = d;
        var rt = d.Runtime;

        // Two containers in one pod, each its own PID 1, sharing the pod's net, ipc and uts.
        var podConfig = Pod(d, "seed", NamespaceMode.Container);
        var pod = (await rt.RunPodSandboxAsync(new RunPodSandboxRequest { Config = podConfig })).PodSandboxId;
        var hostDir = Directory.CreateTempSubdirectory("crid-e2e-mnt-").FullName;
        try
        {
            await SeedAsync(d, imageRef, podConfig, pod, hostDir);
        }
        finally
        {
            // A failed test must not leave its bind mounts on the machine.
            foreach (var m in Cleanup.MountsUnder(hostDir).OrderByDescending(m => m.Length))
                Sh($"umount -l {m}");
            Directory.Delete(hostDir, true);
        }
    }

    private static async Task SeedAsync(DaemonProcess d, string imageRef, PodSandboxConfig podConfig, string pod, string hostDir)
    {
        var rt = d.Runtime;
        await File.WriteAllTextAsync(Path.Combine(hostDir, "file"), "from the host");
        var first = Shell("first", "echo hello; echo oops >&2; exec sleep 1000");
        first.Mounts.Add(new Mount { HostPath = hostDir, ContainerPath = "/data", Readonly = true, Propagation = MountPropagation.PropagationPrivate });
        // rslave needs a shared source: a bind mount of the folder onto itself, made rshared.
        var propagatingDir = Directory.CreateDirectory(Path.Combine(hostDir, "propagating")).FullName;
        Sh($"mount --bind {propagatingDir} {propagatingDir} && mount --make-rshared {propagatingDir}");
        first.Mounts.Add(new Mount { HostPath = propagatingDir, ContainerPath = "/slave", Propagation = MountPropagation.PropagationHostToContainer });
        var a = await RunAsync(d, pod, podConfig, first);
        var b = await RunAsync(d, pod, podConfig, Shell("second", "exec sleep 1000"));
        string Pin(string type) => Directory.EnumerateFiles(Path.Combine(d.NamespacesDir, type + "ns")).Single();
        foreach (var id in new[] { a, b })
        {
            Assert.Equal("sleep 1000", await ExecAsync(d, id, "cat /proc/1/cmdline | busybox tr '\\0' ' ' | busybox sed 's/ $//'"));
            foreach (var ns in new[] { "net", "ipc", "uts" })
                Assert.Equal($"{ns}:[{SandboxTests.Inode(Pin(ns))}]", await ExecAsync(d, id, $"busybox readlink /proc/self/ns/{ns}"));
        }
        Assert.NotEqual(await ExecAsync(d, a, "busybox readlink /proc/self/ns/pid"), await ExecAsync(d, b, "busybox readlink /proc/self/ns/pid"));
        Assert.Equal("from the host", await ExecAsync(d, a, "cat /data/file"));
        Assert.NotEqual(0, (await rt.ExecSyncAsync(new ExecSyncRequest { ContainerId = a, Cmd = { "/bin/sh", "-c", "echo x > /data/new" }, Timeout = 10 })).ExitCode);
        // A mount made on the host after the start reaches the container through rslave.
        Directory.CreateDirectory(Path.Combine(propagatingDir, "late"));
        Sh($"mount -t tmpfs -o size=1m late {propagatingDir}/late && echo propagated > {propagatingDir}/late/file");
        Assert.Equal("propagated", await ExecAsync(d, a, "cat /slave/late/file"));

        // The status as kubelet reads it.
        var status = await StatusAsync(d, a[..12], verbose: true);
        var s = status.Status;
        Assert.Equal((a, ContainerState.ContainerRunning, "first"), (s.Id, s.State, s.Metadata.Name));
        Assert.Equal(Image, s.Image.Image);
        Assert.Equal(imageRef, s.ImageRef);
        Assert.True(s.CreatedAt > 0 && s.StartedAt >= s.CreatedAt && s.FinishedAt == 0);
        Assert.Equal(Path.Combine(podConfig.LogDirectory, "first.log"), s.LogPath);
        Assert.Equal("first", s.Labels["role"]);
        Assert.Equal("kept as given", s.Annotations["note"]);
        Assert.Equal(2, s.Mounts.Count);
        Assert.Equal((hostDir, "/data", true, MountPropagation.PropagationPrivate), (s.Mounts[0].HostPath, s.Mounts[0].ContainerPath, s.Mounts[0].Readonly, s.Mounts[0].Propagation));
        Assert.Equal((propagatingDir, "/slave", false, MountPropagation.PropagationHostToContainer), (s.Mounts[1].HostPath, s.Mounts[1].ContainerPath, s.Mounts[1].Readonly, s.Mounts[1].Propagation));
        Assert.Contains("\"pid\"", status.Info["info"]);
        Assert.Contains("\"ociVersion\"", status.Info["info"]);

        // The log in the CRI format: time, stream, tag, line.
        var log = await File.ReadAllLinesAsync(s.LogPath);
        Assert.Contains(log, l => Regex.IsMatch(l, @"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) stdout F hello$"));
        Assert.Contains(log, l => Regex.IsMatch(l, @"^\S+ stderr F oops$"));

        // The filters kubelet and crictl use.
        async Task<List<string>> List(ContainerFilter f) => [.. (await rt.ListContainersAsync(new ListContainersRequest { Filter = f })).Containers.Select(c => c.Id)];
        Assert.Equal(new[] { a, b }.Order(), (await List(new ContainerFilter { PodSandboxId = pod })).Order());
        Assert.Equal([a], await List(new ContainerFilter { LabelSelector = { ["role"] = "first" } }));
        Assert.Equal([b], await List(new ContainerFilter { Id = b[..10] }));
        Assert.Empty(await List(new ContainerFilter { State = new ContainerStateValue { State = ContainerState.ContainerExited } }));

        // A pod with a shared pid namespace: the infra process is PID 1, the container is not.
        var sharedConfig = Pod(d, "pidpod", NamespaceMode.Pod);
        var shared = (await rt.RunPodSandboxAsync(new RunPodSandboxRequest { Config = sharedConfig })).PodSandboxId;
        var c = await RunAsync(d, shared, sharedConfig, Shell("inpod", "exec sleep 1000"));
        Assert.NotEqual("sleep", await ExecAsync(d, c, "cat /proc/1/comm"));
        Assert.Contains("sleep 1000", await ExecAsync(d, c, "for p in /proc/[0-9]*; do cat $p/cmdline | busybox tr '\\0' ' '; echo; done"));

        // A container of a pod that is not ready cannot be created; stopping the pod stops its containers.
        await rt.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
        foreach (var id in new[] { a, b })
            Assert.Equal(ContainerState.ContainerExited, (await StatusAsync(d, id)).Status.State);
        var refused = await Assert.ThrowsAsync<RpcException>(() => RunAsync(d, pod, podConfig, Shell("late", "true")));
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);

        // Removing the pods removes their containers and everything they held.
        foreach (var p in new[] { pod, shared })
            await rt.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = p });
        Assert.Empty((await rt.ListContainersAsync(new ListContainersRequest())).Containers);
        var gone = await Assert.ThrowsAsync<RpcException>(async () => await StatusAsync(d, a));
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
        Sh($"umount {propagatingDir}/late && umount {propagatingDir}");
        Assert.Empty(Leftovers(d));
        Assert.True(File.Exists(Path.Combine(hostDir, "file")));
    }

    /// <summary>
    /// An image VOLUME starts with what the image has at that path (containerd's behaviour), in a
    /// folder of the container's own that it can write; an image whose volume paths are links to "/"
    /// and "../../" copies nothing, and nothing of the host's shows up in or is written through them.
    /// </summary>
    [Fact]
    public async Task An_image_volume_holds_the_image_content_and_a_hostile_one_stays_in_its_folder()
    {
        var (registry, d, _) = await StartAsync();
        await using var _r = registry;
        await using var _d = d;
        var rt = d.Runtime;
        var busybox = TestImage.Layer(new TarBuilder().Busybox().Build());
        var good = TestImage.Build([busybox, TestImage.Layer(new TarBuilder()
            .Dir("data/", 0x1FD, uid: 1234, gid: 5678)
            .File("data/hello", "from the image", 0x1A0, uid: 1234, gid: 5678)
            .Symlink("data/link", "hello")
            .Dir("data/sub/").File("data/sub/deep", "deeper")
            .Build())], volumes: ["/data"]);
        await registry.PushAsync(good, "e2e/volume:1.0");
        var hostile = TestImage.Build([busybox, TestImage.Layer(new TarBuilder()
            .Symlink("data", "/").Symlink("up", "../../")
            .Build())], volumes: ["/data", "/up"]);
        await registry.PushAsync(hostile, "e2e/hostile-volume:1.0");
        var elsewhere = TestImage.Build([busybox, TestImage.Layer(new TarBuilder().Symlink("data", "/etc").Build())], volumes: ["/data"]);
        await registry.PushAsync(elsewhere, "e2e/etc-volume:1.0");
        foreach (var name in new[] { "volume", "hostile-volume", "etc-volume" })
            await d.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = $"registry.example.invalid/e2e/{name}:1.0" } });
        var hostRoot = Directory.EnumerateFileSystemEntries("/").Order(StringComparer.Ordinal).ToList();

        var podConfig = Pod(d, "volumes", NamespaceMode.Container);
        var pod = (await rt.RunPodSandboxAsync(new RunPodSandboxRequest { Config = podConfig })).PodSandboxId;
        var config = Shell("volume", "exec sleep 1000");
        config.Image.Image = "registry.example.invalid/e2e/volume:1.0";
        var id = await RunAsync(d, pod, podConfig, config);
        Assert.Equal("from the image", await ExecAsync(d, id, "cat /data/hello"));
        Assert.Equal("from the image", await ExecAsync(d, id, "cat /data/link"));
        Assert.Equal("deeper", await ExecAsync(d, id, "cat /data/sub/deep"));
        Assert.Equal("1234 5678 640 775", await ExecAsync(d, id, "busybox stat -c '%u %g %a' /data/hello | busybox tr '\n' ' '; busybox stat -c %a /data"));
        // A volume of its own: a bind mount, writable, and the writes land in the container's folder.
        Assert.Contains(" /data ", await ExecAsync(d, id, "cat /proc/self/mountinfo"));
        await ExecAsync(d, id, "echo written > /data/new");
        var folder = Directory.EnumerateDirectories(Path.Combine(d.StateDir, "containers", id, "volumes")).Single();
        Assert.Equal("written\n", File.ReadAllText(Path.Combine(folder, "new")));
        Assert.Equal("from the image", File.ReadAllText(Path.Combine(folder, "hello")));

        // A volume path that is a link to an absolute path means that path in the rootfs, as in the
        // container: the image's /etc is copied, never the host's.
        var etc = Shell("etc", "exec sleep 1000");
        etc.Image.Image = "registry.example.invalid/e2e/etc-volume:1.0";
        var etcId = await RunAsync(d, pod, podConfig, etc);
        Assert.Equal("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false", await ExecAsync(d, etcId, "cat /etc/passwd"));
        var etcFolder = Directory.EnumerateDirectories(Path.Combine(d.StateDir, "containers", etcId, "volumes")).Single();
        Assert.Equal(["group", "passwd"], Directory.EnumerateFileSystemEntries(etcFolder).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // The hostile image: whatever runc makes of volumes over links to "/", the copy stays empty
        // and nothing lands on the host.
        var bad = Shell("hostile", "echo pwned > /data/pwned-by-crid-test; echo pwned > /up/pwned-by-crid-test; exec sleep 1000");
        bad.Image.Image = "registry.example.invalid/e2e/hostile-volume:1.0";
        string? badId = null;
        try
        {
            badId = (await rt.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod, Config = bad, SandboxConfig = podConfig })).ContainerId;
            foreach (var volume in Directory.EnumerateDirectories(Path.Combine(d.StateDir, "containers", badId, "volumes")))
                Assert.Empty(Directory.EnumerateFileSystemEntries(volume));
            try { await rt.StartContainerAsync(new StartContainerRequest { ContainerId = badId }); }
            catch (RpcException) { }
            await Task.Delay(200);
        }
        catch (RpcException e)
        {
            // runc refuses a mount onto a link to the rootfs's root ("open o_path procfd ... no such
            // file"): the create fails and is rolled back (Leftovers below).
            Assert.Contains("/data", e.Status.Detail);
        }
        Assert.False(File.Exists("/pwned-by-crid-test"));
        Assert.Equal(hostRoot, Directory.EnumerateFileSystemEntries("/").Order(StringComparer.Ordinal).ToList());

        await rt.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        Assert.Empty(Leftovers(d));
    }

    /// <summary>
    /// A GetContainerEvents client that opens its stream and never reads it, on a connection of its
    /// own, while pods and containers start and stop: HTTP/2 flow control stops the daemon's writes
    /// to it, its queue fills, and it is cut off (RESOURCE_EXHAUSTED once it reads at last, after the
    /// events queued for it). Meanwhile every call answers, memory stays bounded, and the client
    /// that reads gets every event, in order.
    /// </summary>
    [Fact]
    public async Task A_subscriber_that_never_reads_is_cut_off_and_costs_no_one_else_anything()
    {
        const int Capacity = 64;
        var (registry, d, _) = await StartAsync("--events-queue-capacity", Capacity.ToString());
        await using var _r = registry;
        await using var _d = d;
        var rt = d.Runtime;
        using var silentChannel = DaemonProcess.CreateChannel(d.Socket);
        using var stopSilent = new CancellationTokenSource();
        using var silent = new RuntimeService.RuntimeServiceClient(silentChannel).GetContainerEvents(new GetEventsRequest(), cancellationToken: stopSilent.Token);
        await EventCounters(d, subscribers: 1);
        using var stopReader = new CancellationTokenSource();
        using var readerCall = rt.GetContainerEvents(new GetEventsRequest(), cancellationToken: stopReader.Token);
        var read = new List<ContainerEventResponse>();
        var reading = Task.Run(async () =>
        {
            await foreach (var e in readerCall.ResponseStream.ReadAllAsync(stopReader.Token))
            {
                lock (read)
                    read.Add(e);
            }
        });
        var before = await EventCounters(d, subscribers: 2);
        var rssBefore = Leaks.MemoryKiB(d.Process.Id);

        // Containers starting and stopping in one pod, and pods coming and going, until the silent
        // client is cut off (its stream's flow-control windows and the queue hold a few hundred events).
        var podConfig = Pod(d, "events", NamespaceMode.Container);
        var pod = (await rt.RunPodSandboxAsync(new RunPodSandboxRequest { Config = podConfig })).PodSandboxId;
        var slowest = TimeSpan.Zero;
        var cycles = 0;
        for (; cycles < 400; cycles++)
        {
            if (cycles % 20 == 0)
            {
                var c = await RunAsync(d, pod, podConfig, Shell($"c{cycles}", "exec sleep 1000"));
                await rt.StopContainerAsync(new StopContainerRequest { ContainerId = c, Timeout = 0 });
                await rt.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = c });
            }
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var id = (await rt.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal($"ev{cycles}") }, deadline: DateTime.UtcNow.AddSeconds(20))).PodSandboxId;
            await rt.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id }, deadline: DateTime.UtcNow.AddSeconds(20));
            await rt.VersionAsync(new VersionRequest(), deadline: DateTime.UtcNow.AddSeconds(20));
            slowest = TimeSpan.FromTicks(Math.Max(slowest.Ticks, watch.Elapsed.Ticks));
            if (cycles % 10 == 9 && (await EventCounters(d)).CutOff == before.CutOff + 1)
                break;
        }
        await rt.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        var after = await EventCounters(d);
        Assert.True(after.CutOff == before.CutOff + 1, $"the silent subscriber was not cut off after {cycles} cycles ({after.Published - before.Published} events)");
        Assert.Equal(1, after.Subscribers);
        var published = (int)(after.Published - before.Published);
        Assert.True(published > 3 * Capacity, $"{published} events");

        // The reader got every event, each pod's in its order.
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (Count() < published && deadline.Elapsed < TimeSpan.FromSeconds(20))
            await Task.Delay(20);
        int Count() { lock (read) return read.Count; }
        List<ContainerEventResponse> events;
        lock (read)
            events = [.. read];
        Assert.Equal(published, events.Count);
        foreach (var group in events.Where(e => e.ContainerId == e.PodSandboxStatus.Id && e.ContainerId != pod).GroupBy(e => e.ContainerId))
            Assert.Equal([ContainerEventType.ContainerCreatedEvent, ContainerEventType.ContainerStartedEvent, ContainerEventType.ContainerStoppedEvent, ContainerEventType.ContainerDeletedEvent],
                group.Select(e => e.ContainerEventType));
        Assert.Contains(events, e => e.ContainerId != e.PodSandboxStatus.Id);

        // Memory: the queue is bounded, and nothing else grows with the events the silent client missed.
        var rssAfter = Leaks.MemoryKiB(d.Process.Id);
        Assert.True(rssAfter - rssBefore < 64 * 1024, $"VmRSS grew from {rssBefore} KiB to {rssAfter} KiB");
        Assert.True(slowest < TimeSpan.FromSeconds(10), $"a cycle took {slowest}");

        // The silent client, reading at last: a prefix of what the reader got, then RESOURCE_EXHAUSTED.
        var late = new List<ContainerEventResponse>();
        var end = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var e in silent.ResponseStream.ReadAllAsync(stopSilent.Token))
                late.Add(e);
        });
        Assert.Equal(StatusCode.ResourceExhausted, end.StatusCode);
        Assert.InRange(late.Count, Capacity, published - 1);
        Assert.Equal(events.Take(late.Count).Select(e => (e.ContainerId, e.ContainerEventType)), late.Select(e => (e.ContainerId, e.ContainerEventType)));

        stopReader.Cancel();
        try { await reading; }
        catch (Exception e) when (e is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled }) { }
        Assert.Empty(Leftovers(d));
    }

    private sealed record Counters(int Subscribers, long Published, long CutOff);

    /// <summary>The events part of verbose Status; with <paramref name="subscribers"/>, waits until that many are counted.</summary>
    private static async Task<Counters> EventCounters(DaemonProcess d, int? subscribers = null)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            using var info = System.Text.Json.JsonDocument.Parse((await d.Runtime.StatusAsync(new StatusRequest { Verbose = true })).Info["events"]);
            var r = info.RootElement;
            var counters = new Counters(r.GetProperty("subscribers").GetInt32(), r.GetProperty("published").GetInt64(), r.GetProperty("subscribersCutOff").GetInt64());
            if (subscribers is null || counters.Subscribers == subscribers)
                return counters;
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"{counters.Subscribers} subscribers, not {subscribers}");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task Exec_and_attach_through_the_streaming_server_reach_the_container()
    {
        var (registry, d, _) = await StartAsync();
        await using var _r = registry;
        await using var _d = d;
        var rt = d.Runtime;
        var podConfig = Pod(d, "stream", NamespaceMode.Container);
        var pod = (await rt.RunPodSandboxAsync(new RunPodSandboxRequest { Config = podConfig })).PodSandboxId;
        var echo = Shell("echo", "while read line; do echo \"got $line\"; done; echo bye");
        echo.Stdin = true;
        echo.StdinOnce = true;
        var id = await RunAsync(d, pod, podConfig, echo);

        // Exec: the command runs in the container with the client's stdin, output and exit code.
        var url = (await rt.ExecAsync(new ExecRequest { ContainerId = id[..12], Cmd = { "/bin/sh", "-c", "cat; echo err >&2; exit 3" }, Stdin = true, Stdout = true, Stderr = true })).Url;
        var answer = await SpdyTestClient.UpgradeAsync(url, ["v4.channel.k8s.io"]);
        Assert.Equal(101, answer.Status);
        ExecResult exec;
        await using (var client = answer.Client!)
            exec = await ExecClient.RunAsync(client, stdin: true, stdout: true, stderr: true, input: "to cat\n");
        Assert.Equal(("to cat\n", "err\n", (int?)3), (exec.Stdout, exec.Stderr, exec.ExitCode()));

        // Attach: stdin reaches the main process; with stdin_once its end is the end of the container's.
        url = (await rt.AttachAsync(new AttachRequest { ContainerId = id, Stdin = true, Stdout = true, Stderr = true })).Url;
        answer = await SpdyTestClient.UpgradeAsync(url, ["v4.channel.k8s.io"]);
        Assert.Equal(101, answer.Status);
        await using (var client = answer.Client!)
            exec = await ExecClient.RunAsync(client, stdin: true, stdout: true, stderr: true, input: "hello\n");
        Assert.Equal("got hello\nbye\n", exec.Stdout);
        var s = await ExitedAsync(d, id);
        Assert.Equal((0, "Completed"), (s.ExitCode, s.Reason));

        // Only a running container streams.
        var created = (await rt.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod, Config = Shell("idle", "true"), SandboxConfig = podConfig })).ContainerId;
        foreach (var c in new[] { id, created })
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => rt.ExecAsync(new ExecRequest { ContainerId = c, Cmd = { "true" }, Stdout = true }).ResponseAsync);
            Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
            e = await Assert.ThrowsAsync<RpcException>(() => rt.AttachAsync(new AttachRequest { ContainerId = c, Stdout = true }).ResponseAsync);
            Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        }
        await rt.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
        await rt.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        Assert.Empty(Leftovers(d));
    }

    [Fact]
    public async Task A_daemon_killed_while_containers_run_and_exit_loses_nothing()
    {
        var (registry, d, _) = await StartAsync();
        await using var __ = registry;
        await using var ___ = d;
        var podConfig = Pod(d, "crash", NamespaceMode.Container);
        var pod = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = podConfig })).PodSandboxId;
        var runs = await RunAsync(d, pod, podConfig, Shell("runs", "exec sleep 1000"));
        var exits = await RunAsync(d, pod, podConfig, Shell("exits", "sleep 2; exit 7"));
        var created = (await d.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod, Config = Shell("created", "exit 3"), SandboxConfig = podConfig })).ContainerId;
        var pid = int.Parse(Regex.Match((await StatusAsync(d, runs, verbose: true)).Info["info"], "\"pid\":\\s*(\\d+)").Groups[1].Value);

        // SIGKILL: nothing is shut down; a container exits while the daemon is away.
        await d.KillAsync();
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.True(Directory.Exists($"/proc/{pid}"), "a container died with its daemon");
        await d.RestartAsync();

        var s = (await StatusAsync(d, exits)).Status;
        Assert.Equal((ContainerState.ContainerExited, 7, "Error"), (s.State, s.ExitCode, s.Reason));
        Assert.True(s.FinishedAt > s.StartedAt);
        Assert.Equal(ContainerState.ContainerRunning, (await StatusAsync(d, runs)).Status.State);
        Assert.Equal(ContainerState.ContainerCreated, (await StatusAsync(d, created)).Status.State);
        Assert.Equal("1000", (await ExecAsync(d, runs, "cat /proc/1/cmdline | busybox tr '\\0' ' '")).Split(' ')[1]);

        // The recovered containers are whole: started, stopped and removed as usual.
        await d.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = created });
        var c = await ExitedAsync(d, created);
        Assert.Equal((3, "Error"), (c.ExitCode, c.Reason));
        await d.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = runs, Timeout = 0 });
        Assert.Equal(137, (await StatusAsync(d, runs)).Status.ExitCode);
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        Assert.Empty(Leftovers(d));
    }
}
