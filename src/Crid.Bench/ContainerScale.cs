using System.Diagnostics;
using Runtime.V1;

namespace Crid.Bench;

/// <summary>
/// The container rows kubelet's steady state asks for, all on the busybox image the container
/// phase pulled (while its registry serves): many live <c>sleep</c> containers (pods × containers
/// per pod), then ListContainers and ListContainerStats over all of them (kubelet calls the first
/// every second, the second every ten), the daemon's and conmon's memory per live container; pods of
/// two containers run by many clients at once; and many container lifecycles, then idle, for the
/// memory given back.
/// </summary>
internal sealed class ContainerScale(Plan plan, DaemonUnderTest daemon, string dir, string image, Report report, Progress progress, CancellationToken ct)
{
    private static DateTime Deadline => DateTime.UtcNow.AddSeconds(60);
    private int _pods;

    private PodSandboxConfig Pod(string phase)
    {
        var n = Interlocked.Increment(ref _pods);
        return new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = $"{phase}-{n}", Namespace = "bench", Uid = $"bench-{phase}-{n}-{Guid.NewGuid():N}" },
            LogDirectory = Path.Combine(dir, "logs", $"{phase}-{n}"),
            Labels = { ["app"] = phase },
            Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Pid = NamespaceMode.Container } } },
        };
    }

    private ContainerConfig Sleep(int i) => new()
    {
        Metadata = new ContainerMetadata { Name = $"sleep-{i}" },
        Image = new ImageSpec { Image = image },
        Command = { "sleep", "100000" },
        LogPath = $"sleep-{i}.log",
        Labels = { ["container"] = $"sleep-{i}" },
        Linux = new LinuxContainerConfig(),
    };

    /// <summary>RunPodSandbox, then <paramref name="containers"/> × (CreateContainer + StartContainer).</summary>
    private async Task<(string Pod, List<string> Containers)> RunPodAsync(RuntimeService.RuntimeServiceClient client, string phase, int containers)
    {
        var config = Pod(phase);
        var podId = (await client.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }, deadline: Deadline, cancellationToken: ct)).PodSandboxId;
        var ids = new List<string>(containers);
        for (var c = 0; c < containers; c++)
        {
            var id = (await client.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = Sleep(c), SandboxConfig = config }, deadline: Deadline, cancellationToken: ct)).ContainerId;
            await client.StartContainerAsync(new StartContainerRequest { ContainerId = id }, deadline: Deadline, cancellationToken: ct);
            ids.Add(id);
        }
        return (podId, ids);
    }

    /// <summary>As kubelet tears a pod down: each container stopped (no grace: sleep as pid 1 ignores SIGTERM), then the pod stopped and removed.</summary>
    private async Task RemovePodAsync(RuntimeService.RuntimeServiceClient client, string podId, IEnumerable<string> containers)
    {
        foreach (var id in containers)
            await client.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 0 }, deadline: Deadline, cancellationToken: ct);
        await client.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }, deadline: Deadline, cancellationToken: ct);
        await client.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }, deadline: Deadline, cancellationToken: ct);
    }

    /// <summary>
    /// pods × containers live, the RSS before and after (the daemon's, and each conmon's VmRSS and
    /// Pss), ListContainers and ListContainerStats over all of them, then everything removed.
    /// </summary>
    public async Task LiveAsync()
    {
        var pods = plan.ContainerPods;
        var per = plan.ContainersPerPod;
        var n = pods * per;
        await Task.Delay(1000, ct);
        var beforeKiB = daemon.StatusKiB("VmRSS");
        report.Figures["rss_before_containers_mib"] = beforeKiB / 1024.0;
        var live = new List<(string Pod, List<string> Containers)>();
        var watch = Stopwatch.StartNew();
        await Clients.InParallelAsync(daemon, 4, pods, $"{pods} pods × {per} containers", progress, ct, async client =>
        {
            var pod = await RunPodAsync(client, "live", per);
            lock (live)
                live.Add(pod);
        });
        report.Figures["live_containers_setup_s"] = watch.Elapsed.TotalSeconds;
        try
        {
            await Task.Delay(1000, ct);
            var liveKiB = daemon.StatusKiB("VmRSS");
            report.Figures["rss_live_containers_mib"] = liveKiB / 1024.0;
            report.Derived["rss_per_live_container_kib"] = (liveKiB - beforeKiB) / (double)n;
            report.Derived["rss_per_live_pod_or_container_kib"] = (liveKiB - beforeKiB) / (double)(n + pods);
            var ids = live.SelectMany(p => p.Containers).ToHashSet();
            var (rss, pss, found) = Conmons(ids);
            if (found != n)
                throw new InvalidOperationException($"{found} conmon processes found for {n} live containers");
            report.Figures["conmon_rss_kib"] = rss;
            report.Figures["conmon_pss_kib"] = pss;

            await ListAsync(n, ids);
            await ListPodStatsAsync(live.Select(p => p.Pod).ToHashSet(), per);
            await RestartOverLiveAsync(ids);
        }
        finally
        {
            await Clients.InParallelAsync(daemon, 4, live.Count, "remove the live pods", progress, ct, async client =>
            {
                (string Pod, List<string> Containers) pod;
                lock (live)
                {
                    pod = live[^1];
                    live.RemoveAt(live.Count - 1);
                }
                await RemovePodAsync(client, pod.Pod, pod.Containers);
            });
        }
    }

    /// <summary>
    /// The daemon restarted over the live containers, the plan's restarts each way in turn: SIGTERM
    /// (as systemd stops it) and SIGKILL (a crash). Each is timed from just before the process is
    /// created to the first answered Version call, and to the first ListContainers: that one call
    /// must already hold every live container, Running (a list missing one would tell kubelet it is
    /// gone). After each, untimed: every container's ContainerStatus (verbose) must give the pid it
    /// gave before, and that process must still be the one that started then (/proc start time).
    /// The RSS 1 s after the last restart. Its floor is <see cref="RestartEmptyAsync"/>.
    /// </summary>
    private async Task RestartOverLiveAsync(HashSet<string> ids)
    {
        var before = await PidsAsync(ids);
        var samples = new Dictionary<string, (Samples Version, Samples List)>
        {
            ["sigterm"] = (new Samples(), new Samples()),
            ["sigkill"] = (new Samples(), new Samples()),
        };
        for (var r = 0; r < plan.Restarts; r++)
        {
            foreach (var (how, (version, list)) in samples)
            {
                ct.ThrowIfCancellationRequested();
                await (how == "sigterm" ? daemon.StopAsync() : daemon.KillAsync());
                var (versionMs, listMs) = await TimedStartAsync(ids);
                version.Add(versionMs);
                list.Add(listMs);
                var after = await PidsAsync(ids);
                foreach (var (id, (pid, started)) in before)
                {
                    if (after[id].Pid != pid || after[id].Started != started)
                        throw new InvalidOperationException($"after a {how} restart container {id} has pid {after[id].Pid} (started {after[id].Started}), before {pid} (started {started})");
                }
                progress.Note($"{how} restart {r + 1}/{plan.Restarts} over {ids.Count} live containers: {versionMs:F1} ms to Version, {listMs:F1} ms to the full ListContainers; same pids");
            }
        }
        foreach (var (how, (version, list)) in samples)
        {
            report.Figures[$"restart_{how}_live_containers_version_ms"] = version.P50;
            report.Figures[$"restart_{how}_live_containers_list_ms"] = list.P50;
        }
        await Task.Delay(1000, ct);
        report.Figures["rss_recovered_containers_mib"] = daemon.StatusKiB("VmRSS") / 1024.0;
    }

    /// <summary>
    /// The floor of <see cref="RestartOverLiveAsync"/> in the same run, once the live pods are
    /// removed: the same restarts, SIGTERM and SIGKILL in turn, with nothing to recover (the image
    /// stays), timed to Version and to the first (empty) ListContainers; p50 over both ways, and
    /// the ratios of the live restarts to it.
    /// </summary>
    public async Task RestartEmptyAsync()
    {
        var version = new Samples();
        var list = new Samples();
        for (var r = 0; r < plan.Restarts; r++)
        {
            foreach (var how in new[] { "sigterm", "sigkill" })
            {
                ct.ThrowIfCancellationRequested();
                await (how == "sigterm" ? daemon.StopAsync() : daemon.KillAsync());
                var (versionMs, listMs) = await TimedStartAsync([]);
                version.Add(versionMs);
                list.Add(listMs);
                progress.Note($"{how} restart {r + 1}/{plan.Restarts} with no container: {versionMs:F1} ms to Version, {listMs:F1} ms to ListContainers");
            }
        }
        report.Figures["restart_empty_containers_version_ms"] = version.P50;
        report.Figures["restart_empty_containers_list_ms"] = list.P50;
        foreach (var how in new[] { "sigterm", "sigkill" })
        {
            if (report.Figures.TryGetValue($"restart_{how}_live_containers_list_ms", out var live))
                report.Figures[$"ratio_restart_{how}_live_containers_to_empty"] = live / list.P50;
        }
    }

    /// <summary>Starts the daemon; the ms from process creation to the first Version, and to the end of the first ListContainers, which must list exactly <paramref name="ids"/>, all Running.</summary>
    private async Task<(double Version, double List)> TimedStartAsync(HashSet<string> ids)
    {
        var versionMs = await daemon.StartAsync();
        using var channel = DaemonUnderTest.CreateChannel(daemon.Socket);
        var client = new RuntimeService.RuntimeServiceClient(channel);
        var containers = (await client.ListContainersAsync(new ListContainersRequest(), deadline: Deadline, cancellationToken: ct)).Containers;
        var listMs = Stopwatch.GetElapsedTime(daemon.StartedAt).TotalMilliseconds;
        var running = containers.Count(c => c.State == ContainerState.ContainerRunning && ids.Contains(c.Id));
        if (containers.Count != ids.Count || running != ids.Count)
            throw new InvalidOperationException($"the first ListContainers after the restart gave {containers.Count} containers ({running} of ours running), expected {ids.Count}");
        return (versionMs, listMs);
    }

    /// <summary>
    /// Each container's pid as the daemon's verbose ContainerStatus gives it (4 clients), with the
    /// start time (field 22 of /proc/&lt;pid&gt;/stat) of that process: a pid reused by another
    /// process would not have the same.
    /// </summary>
    private async Task<Dictionary<string, (int Pid, ulong Started)>> PidsAsync(HashSet<string> ids)
    {
        var queue = new System.Collections.Concurrent.ConcurrentQueue<string>(ids);
        var pids = new System.Collections.Concurrent.ConcurrentDictionary<string, (int, ulong)>();
        await Clients.InParallelAsync(daemon, 4, ids.Count, "container pids", progress, ct, async client =>
        {
            if (!queue.TryDequeue(out var id))
                return;
            var status = await client.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = id, Verbose = true }, deadline: Deadline, cancellationToken: ct);
            if (status.Status.State != ContainerState.ContainerRunning)
                throw new InvalidOperationException($"container {id} is {status.Status.State}, not running");
            using var info = System.Text.Json.JsonDocument.Parse(status.Info["info"]);
            var pid = info.RootElement.GetProperty("pid").GetInt32();
            string stat;
            try
            {
                stat = File.ReadAllText($"/proc/{pid}/stat");
            }
            catch (IOException)
            {
                throw new InvalidOperationException($"container {id}: its pid {pid} is not running");
            }
            pids[id] = (pid, ulong.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19]));
        });
        return new Dictionary<string, (int, ulong)>(pids);
    }

    /// <summary>
    /// The conmon of each live container (its command line names the container's id after -c): the
    /// mean VmRSS, and the mean Pss from smaps_rollup (its pages of libc and glib are shared by all
    /// of them; Pss charges each its share), in KiB.
    /// </summary>
    private static (double Rss, double Pss, int Found) Conmons(HashSet<string> ids)
    {
        long rss = 0, pss = 0;
        var found = 0;
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out _))
                continue;
            try
            {
                if (File.ReadAllText(Path.Combine(proc, "comm")).Trim() != "conmon")
                    continue;
                var args = File.ReadAllText(Path.Combine(proc, "cmdline")).Split('\0');
                var c = Array.IndexOf(args, "-c");
                if (c < 0 || c + 1 >= args.Length || !ids.Contains(args[c + 1]))
                    continue;
                rss += KiB(Path.Combine(proc, "status"), "VmRSS");
                pss += KiB(Path.Combine(proc, "smaps_rollup"), "Pss");
                found++;
            }
            catch (IOException)
            {
                // Gone meanwhile: not one of ours, which all live.
            }
        }
        return found == 0 ? (0, 0, 0) : (rss / (double)found, pss / (double)found, found);
    }

    private static long KiB(string file, string field)
    {
        foreach (var line in File.ReadLines(file))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(field.Length + 1).Trim().TrimEnd("kB").Trim());
        }
        throw new InvalidOperationException($"{file} has no {field}");
    }

    /// <summary>ListContainers (unfiltered, as kubelet's relist) and ListContainerStats, each p50 over the plan's list calls after 3 unmeasured.</summary>
    private async Task ListAsync(int expected, HashSet<string> ids)
    {
        using var channel = DaemonUnderTest.CreateChannel(daemon.Socket);
        var client = new RuntimeService.RuntimeServiceClient(channel);
        var list = new Samples();
        var stats = new Samples();
        var total = plan.ListCalls + 3;
        for (var i = 0; i < total; i++)
        {
            ct.ThrowIfCancellationRequested();
            var t0 = Stopwatch.GetTimestamp();
            var containers = (await client.ListContainersAsync(new ListContainersRequest(), deadline: Deadline, cancellationToken: ct)).Containers;
            var t1 = Stopwatch.GetTimestamp();
            var running = containers.Count(c => c.State == ContainerState.ContainerRunning && ids.Contains(c.Id));
            if (containers.Count != expected || running != expected)
                throw new InvalidOperationException($"ListContainers gave {containers.Count} containers ({running} of ours running), expected {expected}");
            if (i >= 3)
                list.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            progress.Tick($"ListContainers over {expected}", i + 1, total);
        }
        for (var i = 0; i < total; i++)
        {
            ct.ThrowIfCancellationRequested();
            var t0 = Stopwatch.GetTimestamp();
            var answer = (await client.ListContainerStatsAsync(new ListContainerStatsRequest(), deadline: Deadline, cancellationToken: ct)).Stats;
            var t1 = Stopwatch.GetTimestamp();
            var measured = answer.Count(s => s.Memory?.WorkingSetBytes is not null && s.Cpu?.UsageCoreNanoSeconds is not null);
            if (answer.Count != expected || measured != expected)
                throw new InvalidOperationException($"ListContainerStats gave {answer.Count} stats ({measured} with CPU and memory), expected {expected}");
            if (i == 0)
            {
                // The first call measures every writable layer (a walk each) and opens every
                // container's cgroup files; later calls get the walks' figures (refreshed in the
                // background past 5 s) and read through the files kept open.
                report.Figures["list_container_stats_first_ms"] = Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds;
            }
            if (i >= 3)
                stats.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            progress.Tick($"ListContainerStats over {expected}", i + 1, total);
        }
        report.Figures["list_containers_p50_ms"] = list.P50;
        report.Figures["list_containers_p90_ms"] = list.P90;
        report.Figures["list_container_stats_p50_ms"] = stats.P50;
        report.Figures["list_container_stats_p90_ms"] = stats.P90;
    }

    /// <summary>
    /// ListPodSandboxStats over the live pods (what kubelet's /stats/summary asks for with
    /// PodAndContainerStatsFromCRI): each pod checked to carry CPU and memory and its containers'
    /// entries; p50 over the plan's list calls after 3 unmeasured.
    /// </summary>
    private async Task ListPodStatsAsync(HashSet<string> pods, int perPod)
    {
        using var channel = DaemonUnderTest.CreateChannel(daemon.Socket);
        var client = new RuntimeService.RuntimeServiceClient(channel);
        var samples = new Samples();
        var total = plan.ListCalls + 3;
        for (var i = 0; i < total; i++)
        {
            ct.ThrowIfCancellationRequested();
            var t0 = Stopwatch.GetTimestamp();
            var answer = (await client.ListPodSandboxStatsAsync(new ListPodSandboxStatsRequest(), deadline: Deadline, cancellationToken: ct)).Stats;
            var t1 = Stopwatch.GetTimestamp();
            var complete = answer.Count(s => pods.Contains(s.Attributes.Id) && s.Linux?.Cpu?.UsageCoreNanoSeconds is not null
                && s.Linux.Memory?.WorkingSetBytes is not null && s.Linux.Containers.Count == perPod);
            if (answer.Count != pods.Count || complete != pods.Count)
                throw new InvalidOperationException($"ListPodSandboxStats gave {answer.Count} pods ({complete} of ours with CPU, memory and {perPod} containers), expected {pods.Count}");
            if (i >= 3)
                samples.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            progress.Tick($"ListPodSandboxStats over {pods.Count} pods", i + 1, total);
        }
        report.Figures["list_pod_sandbox_stats_p50_ms"] = samples.P50;
        report.Figures["list_pod_sandbox_stats_p90_ms"] = samples.P90;
    }

    /// <summary>
    /// The plan's clients, each running whole pods of two containers in a loop: RunPodSandbox, 2 ×
    /// (CreateContainer + StartContainer), 2 × StopContainer, StopPodSandbox, RemovePodSandbox.
    /// Lifecycles/s over the phase, and the p50 of one lifecycle.
    /// </summary>
    public async Task ConcurrentAsync()
    {
        var lifecycles = new Samples();
        var start = new Samples();
        var clients = plan.ContainerClients;
        var total = plan.ContainerConcurrentLifecycles;
        var watch = Stopwatch.StartNew();
        await Clients.InParallelAsync(daemon, clients, total, $"pods of 2 containers, {clients} clients", progress, ct, async client =>
        {
            var t0 = Stopwatch.GetTimestamp();
            var (pod, containers) = await RunPodAsync(client, "conc", 2);
            var t1 = Stopwatch.GetTimestamp();
            await RemovePodAsync(client, pod, containers);
            start.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            lifecycles.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        });
        report.Figures["pods2_concurrent_lifecycles_per_s"] = total / watch.Elapsed.TotalSeconds;
        report.Figures["pods2_concurrent_lifecycle_p50_ms"] = lifecycles.P50;
        report.Figures["pods2_concurrent_lifecycle_p90_ms"] = lifecycles.P90;
        report.Figures["pods2_concurrent_start_p50_ms"] = start.P50;
    }

    /// <summary>
    /// Container lifecycles (CreateContainer, StartContainer, StopContainer, RemoveContainer) in a
    /// few long-lived pods over 4 clients, not timed; the RSS right after, then after the plan's idle
    /// seconds without a call. The target: within 10 MiB of the fresh idle daemon.
    /// </summary>
    public async Task LoadThenIdleAsync()
    {
        const int clients = 4;
        var pods = new List<(string Id, PodSandboxConfig Config)>();
        using (var channel = DaemonUnderTest.CreateChannel(daemon.Socket))
        {
            var client = new RuntimeService.RuntimeServiceClient(channel);
            for (var p = 0; p < clients; p++)
            {
                var config = Pod("load");
                pods.Add(((await client.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }, deadline: Deadline, cancellationToken: ct)).PodSandboxId, config));
            }
        }
        var next = -1;
        await Clients.InParallelAsync(daemon, clients, plan.ContainerLoadLifecycles, "container lifecycles (load)", progress, ct, async client =>
        {
            var i = Interlocked.Increment(ref next);
            var (podId, config) = pods[i % pods.Count];
            var id = (await client.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = Sleep(i), SandboxConfig = config }, deadline: Deadline, cancellationToken: ct)).ContainerId;
            await client.StartContainerAsync(new StartContainerRequest { ContainerId = id }, deadline: Deadline, cancellationToken: ct);
            await client.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 0 }, deadline: Deadline, cancellationToken: ct);
            await client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id }, deadline: Deadline, cancellationToken: ct);
        });
        using (var channel = DaemonUnderTest.CreateChannel(daemon.Socket))
        {
            var client = new RuntimeService.RuntimeServiceClient(channel);
            foreach (var (podId, _) in pods)
                await RemovePodAsync(client, podId, []);
        }
        report.Figures["rss_after_container_load_mib"] = daemon.StatusKiB("VmRSS") / 1024.0;
        await Task.Delay(TimeSpan.FromSeconds(plan.IdleSeconds), ct);
        var idle = daemon.StatusKiB("VmRSS") / 1024.0;
        report.Figures["rss_idle_after_container_load_mib"] = idle;
        report.Derived["rss_idle_after_container_load_over_fresh_mib"] = idle - report.Figures["rss_idle_fresh_mib"];
    }
}

/// <summary>n operations shared by several clients, each on a channel of its own connected before the first.</summary>
internal static class Clients
{
    public static async Task InParallelAsync(DaemonUnderTest daemon, int clients, int n, string phase, Progress progress, CancellationToken ct,
        Func<RuntimeService.RuntimeServiceClient, Task> op)
    {
        var channels = Enumerable.Range(0, clients).Select(_ => DaemonUnderTest.CreateChannel(daemon.Socket)).ToArray();
        try
        {
            var stubs = channels.Select(c => new RuntimeService.RuntimeServiceClient(c)).ToArray();
            await Task.WhenAll(stubs.Select(s => s.VersionAsync(new VersionRequest(), cancellationToken: ct).ResponseAsync));
            var next = 0;
            await Task.WhenAll(stubs.Select(client => Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) <= n)
                {
                    ct.ThrowIfCancellationRequested();
                    await op(client);
                    progress.Tick(phase, i, n);
                }
            }, ct)));
        }
        finally
        {
            foreach (var c in channels)
                c.Dispose();
        }
    }
}
