using System.Diagnostics;
using Crid.Linux;
using Runtime.V1;

namespace Crid.Bench;

/// <summary>The phases, in the order they run, each adding its figures to the report.</summary>
internal sealed class Benchmark(Plan plan, DaemonUnderTest daemon, string floorDir, Progress progress, CancellationToken ct, string? only = null)
{
    private readonly Report _report = new();

    /// <summary>
    /// No call may hang the run: a stuck call fails it with DeadlineExceeded and the daemon's last
    /// lines (a ListPodSandbox over 1,000 sandboxes once waited forever here, see docs/benchmark.md).
    /// </summary>
    private static DateTime Deadline => DateTime.UtcNow.AddSeconds(30);
    private long _peakKiB;

    public async Task<Report> RunAsync()
    {
        _report.Figures["startup_first_ms"] = await daemon.StartAsync();
        // Idle: up and answering, nothing asked yet; a moment for the runtime's own start-up work.
        await Task.Delay(1000, ct);
        _report.Figures["rss_idle_fresh_mib"] = daemon.StatusKiB("VmRSS") / 1024.0;
        // A fresh daemon left alone trims itself too (IdleMemory): the like-for-like base for the
        // figures taken after the daemon's idle trim below.
        await Task.Delay(TimeSpan.FromSeconds(plan.IdleSeconds - 1), ct);
        _report.Figures["rss_idle_fresh_settled_mib"] = daemon.StatusKiB("VmRSS") / 1024.0;
        if (only is not null)
        {
            await (only switch { "sandboxes" => SandboxesAsync(), "pulls" => PullsAsync(), "pod-container" => ContainersAsync(scale: false), _ => ContainersAsync() });
            _report.Figures["rss_peak_mib"] = _peakKiB / 1024.0;
            await daemon.StopAsync();
            return _report;
        }

        await SandboxesAsync();
        await ExecAsync();
        foreach (var clients in plan.Clients)
            await ConcurrentAsync(clients);
        await NetworkAsync();
        await LoadThenIdleAsync();
        await ScaleAndRecoveryAsync();
        await PullsAsync();
        await ContainersAsync();
        await StartupEmptyAsync();
        _report.Figures["rss_peak_mib"] = _peakKiB / 1024.0;
        await daemon.StopAsync();
        return _report;
    }

    /// <summary>The sequential lifecycles, the floors beside them and their ratios (alone: `--only sandboxes`).</summary>
    private async Task SandboxesAsync()
    {
        await SequentialAsync();
        Floor();
        _report.Figures["ratio_run_to_floor_create"] = _report.Figures["run_p50_ms"] / _report.Figures["floor_create_p50_ms"];
        _report.Figures["ratio_stop_to_floor_remove"] = _report.Figures["stop_p50_ms"] / _report.Figures["floor_remove_p50_ms"];
        // The targets' form: Run against 1.5 × the floor + the transport, Stop against 2 × its floor.
        _report.Figures["ratio_run_to_floor_plus_transport"] = _report.Figures["run_p50_ms"] / (_report.Figures["floor_create_p50_ms"] + _report.Figures["version_p50_ms"]);
        _report.Figures["ratio_stop_to_floor_plus_transport"] = _report.Figures["stop_p50_ms"] / (_report.Figures["floor_remove_p50_ms"] + _report.Figures["version_p50_ms"]);
    }

    private async Task SequentialAsync()
    {
        using var channel = DaemonUnderTest.CreateChannel(daemon.Socket);
        var client = new RuntimeService.RuntimeServiceClient(channel);
        var calls = new LifecycleSamples();
        var version = new Samples();
        var (floorCreate, floorRemove) = (new Samples(), new Samples());
        var floorOptions = new PodNamespacesOptions();
        var total = plan.Warmup + plan.Lifecycles;
        for (var i = 0; i < total; i++)
        {
            ct.ThrowIfCancellationRequested();
            // The warm-up lifecycles are not counted: a JIT-compiled daemon compiles its hot path on them.
            await LifecycleAsync(client, i < plan.Warmup ? new LifecycleSamples() : calls);
            // The floors of the targets' ratios in turn with each lifecycle, so that a stretch of CPU
            // steal (this VM's host takes 10-25 % at times) falls on both sides of the ratio alike: the
            // transport's (an empty Version call over the same channel: the socket, HTTP/2, the server's
            // routing and interceptors, no work) and the pinning core's, in this process.
            var t0 = Stopwatch.GetTimestamp();
            await client.VersionAsync(new VersionRequest(), deadline: Deadline, cancellationToken: ct);
            var versionMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            var (createMs, removeMs) = Crid.Bench.Floor.Once(floorDir, i, floorOptions);
            if (i >= plan.Warmup)
            {
                version.Add(versionMs);
                floorCreate.Add(createMs);
                floorRemove.Add(removeMs);
            }
            progress.Tick("sequential lifecycles and floors", i + 1, total);
        }
        foreach (var (call, samples) in calls.ByCall)
        {
            _report.Figures[$"{call}_p50_ms"] = samples.P50;
            _report.Figures[$"{call}_p90_ms"] = samples.P90;
            _report.Figures[$"{call}_p99_ms"] = samples.P99;
        }
        _report.Figures["version_p50_ms"] = version.P50;
        _report.Figures["floor_create_p50_ms"] = floorCreate.P50;
        _report.Figures["floor_remove_p50_ms"] = floorRemove.P50;
        _report.Figures["version_p90_ms"] = version.P90;
        SamplePeak();
    }

    private void Floor()
    {
        // The design choice behind the floor: long-lived namespace workers against a new thread per call
        // (what tests/Crid.Linux.Tests/PerfTests measured on every `make test` before; a measurement belongs here).
        var perCall = Crid.Bench.Floor.Measure(floorDir, plan.FloorIterations / 2, plan.Warmup, progress, workers: false);
        _report.Figures["floor_create_thread_per_call_p50_ms"] = perCall.Create.P50;
        var core = InProcess.Measure(Path.Combine(floorDir, "manager"), plan.FloorIterations, plan.Warmup, progress);
        _report.Figures["inprocess_run_p50_ms"] = core.Run.P50;
        _report.Figures["inprocess_stop_p50_ms"] = core.Stop.P50;
        _report.Figures["inprocess_remove_p50_ms"] = core.Remove.P50;
        var files = SandboxFiles.Measure(Path.Combine(floorDir, "files"), plan.FloorIterations / 2, progress);
        _report.Figures["files_atomic_p50_ms"] = files.Atomic.P50;
        _report.Figures["files_fsync_p50_ms"] = files.Durable.P50;
    }

    private async Task PullsAsync()
    {
        var (pull, floor, present, presentFloor, presentConditional) = await ImagePulls.MeasureAsync(daemon, Path.Combine(floorDir, "pulls"), plan.Pulls, warmup: 1, progress, ct,
            async image =>
            {
                var (rpc, runc) = await ExecRpc.MeasureAsync(daemon, image, plan.FloorIterations, plan.Warmup, progress, ct);
                _report.Figures["execsync_rpc_p50_ms"] = rpc.P50;
                _report.Figures["execsync_rpc_p90_ms"] = rpc.P90;
                _report.Figures["floor_runc_exec_same_container_p50_ms"] = runc.P50;
                _report.Figures["ratio_execsync_rpc_to_runc_exec"] = rpc.P50 / runc.P50;
            });
        _report.Figures["pull_busybox_p50_ms"] = pull.P50;
        _report.Figures["floor_skopeo_tar_p50_ms"] = floor.P50;
        _report.Figures["ratio_pull_to_skopeo_tar"] = pull.P50 / floor.P50;
        _report.Figures["pull_present_p50_ms"] = present.P50;
        _report.Figures["floor_manifest_get_p50_ms"] = presentFloor.P50;
        _report.Figures["ratio_pull_present_to_manifest_get"] = present.P50 / presentFloor.P50;
        _report.Figures["floor_manifest_conditional_get_p50_ms"] = presentConditional.P50;
        _report.Figures["ratio_pull_present_to_conditional_get"] = present.P50 / presentConditional.P50;
        SamplePeak();
    }

    /// <param name="scale">Also the phases over many containers (all but `--only pod-container`).</param>
    private async Task ContainersAsync(bool scale = true)
    {
        var r = await ContainerBench.MeasureAsync(daemon, Path.Combine(floorDir, "containers"), plan.Containers, warmup: 1, progress, ct,
            !scale ? null : async image =>
            {
                var scaled = new ContainerScale(plan, daemon, Path.Combine(floorDir, "scale"), image, _report, progress, ct);
                await scaled.LiveAsync();
                SamplePeak();
                await scaled.RestartEmptyAsync();
                await scaled.ConcurrentAsync();
                SamplePeak();
                await scaled.LoadThenIdleAsync();
                SamplePeak();
            });
        _report.Figures["pod_container_start_p50_ms"] = r.Crid.P50;
        _report.Figures["pod_container_start_p90_ms"] = r.Crid.P90;
        _report.Figures["floor_runc_create_start_p50_ms"] = r.Runc.P50;
        _report.Figures["ratio_pod_container_to_runc_create_start"] = r.Crid.P50 / r.Runc.P50;
        _report.Figures["pod_container_run_p50_ms"] = r.Run.P50;
        _report.Figures["pod_container_create_p50_ms"] = r.Create.P50;
        _report.Figures["pod_container_start_call_p50_ms"] = r.Start.P50;
        _report.Figures["floor_runc_create_p50_ms"] = r.RuncCreate.P50;
        _report.Figures["floor_runc_start_p50_ms"] = r.RuncStart.P50;
        _report.Figures["teardown_p50_ms"] = r.Teardown.P50;
        _report.Figures["teardown_p90_ms"] = r.Teardown.P90;
        _report.Figures["floor_runc_kill_delete_unpin_p50_ms"] = r.TeardownFloor.P50;
        _report.Figures["ratio_teardown_to_floor"] = r.Teardown.P50 / r.TeardownFloor.P50;
        SamplePeak();
    }

    private async Task ExecAsync()
    {
        var exec = await ExecBench.MeasureAsync(Path.Combine(floorDir, "exec"), plan.FloorIterations, plan.Warmup, progress);
        if (exec is { } e)
        {
            _report.Figures["execsync_p50_ms"] = e.Driver.P50;
            _report.Figures["execsync_p90_ms"] = e.Driver.P90;
            _report.Figures["floor_runc_exec_p50_ms"] = e.Runc.P50;
            _report.Figures["ratio_execsync_to_runc_exec"] = e.Driver.P50 / e.Runc.P50;
        }
    }

    private async Task ConcurrentAsync(int clients)
    {
        var channels = Enumerable.Range(0, clients).Select(_ => DaemonUnderTest.CreateChannel(daemon.Socket)).ToArray();
        try
        {
            var stubs = channels.Select(c => new RuntimeService.RuntimeServiceClient(c)).ToArray();
            // Connections are made before the clock starts: a kubelet keeps its connection open.
            await Task.WhenAll(stubs.Select(s => s.VersionAsync(new VersionRequest(), deadline: Deadline, cancellationToken: ct).ResponseAsync));
            var calls = new LifecycleSamples();
            var next = 0;
            var phase = $"{clients} client(s)";
            var watch = Stopwatch.StartNew();
            await Task.WhenAll(stubs.Select(s => Task.Run(async () =>
            {
                int n;
                while ((n = Interlocked.Increment(ref next)) <= plan.ConcurrentLifecycles)
                {
                    ct.ThrowIfCancellationRequested();
                    await LifecycleAsync(s, calls);
                    progress.Tick(phase, n, plan.ConcurrentLifecycles);
                }
            }, ct)));
            var seconds = watch.Elapsed.TotalSeconds;
            _report.Figures[$"c{clients}_lifecycles_per_s"] = plan.ConcurrentLifecycles / seconds;
            _report.Figures[$"c{clients}_run_p50_ms"] = calls.Run.P50;
            _report.Figures[$"c{clients}_run_p90_ms"] = calls.Run.P90;
            _report.Figures[$"c{clients}_run_p99_ms"] = calls.Run.P99;
            SamplePeak();
        }
        finally
        {
            foreach (var c in channels)
                c.Dispose();
        }
    }

    private async Task ScaleAndRecoveryAsync()
    {
        var n = plan.LiveSandboxes;
        await Task.Delay(1000, ct);
        var baseKiB = daemon.StatusKiB("VmRSS");
        _report.Figures["rss_idle_warm_mib"] = baseKiB / 1024.0;

        var ids = await RunManyAsync(n, "live sandboxes");
        await Task.Delay(1000, ct);
        _report.Figures["rss_live_mib"] = daemon.StatusKiB("VmRSS") / 1024.0;
        // What the live sandboxes keep, once the garbage of creating them is collected: the RSS after
        // the daemon's idle trim, against the fresh daemon's after its own. Within the GC's noise for
        // a quick run's few sandboxes (it may be negative), so kept among the derived figures.
        await Task.Delay(TimeSpan.FromSeconds(plan.IdleSeconds), ct);
        var liveKiB = daemon.StatusKiB("VmRSS");
        _report.Figures["rss_live_settled_mib"] = liveKiB / 1024.0;
        _report.Derived["rss_per_sandbox_kib"] = (liveKiB - _report.Figures["rss_idle_fresh_settled_mib"] * 1024) / n;
        _report.Derived["rss_marginal_per_sandbox_kib"] = (liveKiB - baseKiB) / (double)n;
        await ListAsync(n, "list");

        var restarts = new Samples();
        for (var r = 0; r < plan.Restarts; r++)
        {
            SamplePeak();
            await daemon.StopAsync();
            var ms = await daemon.StartAsync();
            restarts.Add(ms);
            progress.Note($"restart {r + 1}/{plan.Restarts} with {n} live sandboxes to recover: {ms:F1} ms to the first answer");
        }
        _report.Figures["startup_recover_ms"] = restarts.P50;
        await ListAsync(n, "list after restart");
        await Task.Delay(1000, ct);
        _report.Figures["rss_recovered_mib"] = daemon.StatusKiB("VmRSS") / 1024.0;

        await RemoveManyAsync(ids, "remove all");
        await Task.Delay(1000, ct);
        _report.Figures["rss_after_remove_mib"] = daemon.StatusKiB("VmRSS") / 1024.0;
    }

    /// <summary>
    /// The pod network rows: Run and Stop of pods on a bridge + portmap network against the same chain
    /// exec'd directly on a pinned netns (ADD, then DEL), sequential and with several clients at once.
    /// </summary>
    private async Task NetworkAsync()
    {
        if (BenchNetwork.Missing() is { } missing)
        {
            progress.Note($"network rows skipped: {missing}");
            return;
        }
        using var network = new BenchNetwork(Path.Combine(floorDir, "cni"));
        network.WriteConflist(daemon.CniConfDir);
        try
        {
            using (var channel = DaemonUnderTest.CreateChannel(daemon.Socket))
            {
                var client = new RuntimeService.RuntimeServiceClient(channel);
                await WaitForNetworkReadyAsync(client, true);
                var calls = new LifecycleSamples();
                var total = plan.Warmup + plan.NetworkLifecycles;
                for (var i = 0; i < total; i++)
                {
                    ct.ThrowIfCancellationRequested();
                    await LifecycleAsync(client, i < plan.Warmup ? new LifecycleSamples() : calls, withNetwork: true);
                    progress.Tick("network lifecycles", i + 1, total);
                }
                _report.Figures["net_run_p50_ms"] = calls.Run.P50;
                _report.Figures["net_run_p90_ms"] = calls.Run.P90;
                _report.Figures["net_stop_p50_ms"] = calls.Stop.P50;
                _report.Figures["net_stop_p90_ms"] = calls.Stop.P90;
            }
            await NetworkConcurrentAsync();

            // The floor, on the same network: a pinned netns (the pinning floor's namespaces) and the chain.
            var add = new Samples();
            var del = new Samples();
            var total2 = plan.Warmup + plan.NetworkLifecycles;
            for (var i = 0; i < total2; i++)
            {
                var (a, d) = await PinnedChainAsync(network, i);
                if (i >= plan.Warmup)
                {
                    add.Add(a);
                    del.Add(d);
                }
                progress.Tick("network floor", i + 1, total2);
            }
            _report.Figures["floor_cni_add_p50_ms"] = add.P50;
            _report.Figures["floor_cni_del_p50_ms"] = del.P50;
            _report.Figures["ratio_net_run_to_floor"] = _report.Figures["net_run_p50_ms"] / (add.P50 + _report.Figures["floor_create_p50_ms"]);
            _report.Figures["ratio_net_stop_to_floor"] = _report.Figures["net_stop_p50_ms"] / (del.P50 + _report.Figures["floor_remove_p50_ms"]);

            // The same chain with as many workers as the daemon had clients, no daemon at all: what the
            // plugins themselves allow at once (host-local's lock on its store, the xtables lock of
            // portmap's iptables calls), the ceiling for the daemon's figure above.
            var next = 0;
            var watch = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, plan.NetworkClients).Select(_ => Task.Run(async () =>
            {
                int n;
                while ((n = Interlocked.Increment(ref next)) <= plan.NetworkConcurrentLifecycles)
                {
                    ct.ThrowIfCancellationRequested();
                    await PinnedChainAsync(network, n);
                    progress.Tick($"network floor, {plan.NetworkClients} at once", n, plan.NetworkConcurrentLifecycles);
                }
            }, ct)));
            _report.Figures[$"floor_cni_c{plan.NetworkClients}_lifecycles_per_s"] = plan.NetworkConcurrentLifecycles / watch.Elapsed.TotalSeconds;
        }
        finally
        {
            File.Delete(Path.Combine(daemon.CniConfDir, "10-bench.conflist"));
        }
        using (var channel = DaemonUnderTest.CreateChannel(daemon.Socket))
            await WaitForNetworkReadyAsync(new RuntimeService.RuntimeServiceClient(channel), false);
        SamplePeak();
    }

    private async Task<(double Add, double Del)> PinnedChainAsync(BenchNetwork network, int i)
    {
        var pins = Crid.Linux.PodNamespaces.Create(new Crid.Linux.PodNamespacesRequest
        {
            NamespacesDir = Path.Combine(floorDir, "cni-ns"),
            Namespaces = [new("net", false), new("ipc", false), new("uts", false), new("user", true)],
            LoopbackUp = true,
            Hostname = $"chain-{i}",
        });
        try
        {
            return await network.ChainAsync(pins.Pins.First(p => p.Type == "net").Path, ct);
        }
        finally
        {
            for (var p = pins.Pins.Count - 1; p >= 0; p--)
                pins.Pins[p].Remove();
        }
    }

    private async Task NetworkConcurrentAsync()
    {
        var clients = plan.NetworkClients;
        var channels = Enumerable.Range(0, clients).Select(_ => DaemonUnderTest.CreateChannel(daemon.Socket)).ToArray();
        try
        {
            var stubs = channels.Select(c => new RuntimeService.RuntimeServiceClient(c)).ToArray();
            await Task.WhenAll(stubs.Select(s => s.VersionAsync(new VersionRequest(), deadline: Deadline, cancellationToken: ct).ResponseAsync));
            var calls = new LifecycleSamples();
            var next = 0;
            var watch = Stopwatch.StartNew();
            await Task.WhenAll(stubs.Select(s => Task.Run(async () =>
            {
                int n;
                while ((n = Interlocked.Increment(ref next)) <= plan.NetworkConcurrentLifecycles)
                {
                    ct.ThrowIfCancellationRequested();
                    await LifecycleAsync(s, calls, withNetwork: true);
                    progress.Tick($"network, {clients} clients", n, plan.NetworkConcurrentLifecycles);
                }
            }, ct)));
            _report.Figures[$"net_c{clients}_lifecycles_per_s"] = plan.NetworkConcurrentLifecycles / watch.Elapsed.TotalSeconds;
            _report.Figures[$"net_c{clients}_run_p50_ms"] = calls.Run.P50;
            _report.Figures[$"net_c{clients}_stop_p50_ms"] = calls.Stop.P50;
        }
        finally
        {
            foreach (var c in channels)
                c.Dispose();
        }
    }

    /// <summary>The daemon re-reads its CNI folder when it changes; Status says when it has.</summary>
    private async Task WaitForNetworkReadyAsync(RuntimeService.RuntimeServiceClient client, bool ready)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var status = await client.StatusAsync(new StatusRequest(), deadline: Deadline, cancellationToken: ct);
            if (status.Status.Conditions.Any(c => c.Type == "NetworkReady" && c.Status == ready))
                return;
            if (watch.Elapsed > TimeSpan.FromSeconds(30))
                throw new TimeoutException($"the daemon's NetworkReady did not become {ready} within 30 s of the CNI folder's change");
            await Task.Delay(50, ct);
        }
    }

    /// <summary>
    /// Memory given back: many lifecycles over 4 clients (not timed), the RSS right after, then
    /// the RSS after the plan's idle seconds with no call at all. The daemon trims itself once idle
    /// (src/Crid/IdleMemory.cs); the target is the fresh idle RSS + 10 MiB.
    /// </summary>
    private async Task LoadThenIdleAsync()
    {
        var n = plan.LoadLifecycles;
        var discard = new LifecycleSamples();
        await InParallelAsync(n, "load lifecycles", client => LifecycleAsync(client, discard));
        _report.Figures["rss_after_load_mib"] = daemon.StatusKiB("VmRSS") / 1024.0;
        SamplePeak();
        await Task.Delay(TimeSpan.FromSeconds(plan.IdleSeconds), ct);
        var idle = daemon.StatusKiB("VmRSS") / 1024.0;
        _report.Figures["rss_idle_after_load_mib"] = idle;
        _report.Derived["rss_idle_after_load_over_fresh_mib"] = idle - _report.Figures["rss_idle_fresh_mib"];
        _report.Derived["rss_idle_after_load_over_settled_mib"] = idle - _report.Figures["rss_idle_fresh_settled_mib"];
    }

    private async Task StartupEmptyAsync()
    {
        var starts = new Samples();
        for (var r = 0; r < plan.Restarts; r++)
        {
            SamplePeak();
            await daemon.StopAsync();
            var ms = await daemon.StartAsync();
            starts.Add(ms);
            progress.Note($"restart {r + 1}/{plan.Restarts} with nothing to recover: {ms:F1} ms to the first answer");
        }
        _report.Figures["startup_empty_ms"] = starts.P50;
    }

    /// <summary>
    /// ListPodSandbox as kubelet calls it (unfiltered), p50; beside it, to see where the time goes,
    /// the same call taking the answer as bytes (server, mapping and transport, no parsing) and the
    /// client's parse of those bytes alone.
    /// </summary>
    private async Task ListAsync(int expected, string phase)
    {
        using var channel = DaemonUnderTest.CreateChannel(daemon.Socket);
        var client = new RuntimeService.RuntimeServiceClient(channel);
        var invoker = channel.CreateCallInvoker();
        var samples = new Samples();
        var raw = new Samples();
        var parse = new Samples();
        var bytes = 0;
        for (var i = 0; i < plan.ListCalls + 3; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            var items = (await client.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: Deadline, cancellationToken: ct)).Items;
            var ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            var ready = items.Count(p => p.State == PodSandboxState.SandboxReady);
            if (items.Count != expected || ready != expected)
                throw new InvalidOperationException($"{phase}: ListPodSandbox gave {items.Count} sandboxes ({ready} ready), expected {expected} ready");
            var t1 = Stopwatch.GetTimestamp();
            var answer = await invoker.AsyncUnaryCall(RawList, null, new Grpc.Core.CallOptions(deadline: Deadline, cancellationToken: ct), new ListPodSandboxRequest());
            var t2 = Stopwatch.GetTimestamp();
            var parsed = ListPodSandboxResponse.Parser.ParseFrom(answer);
            var t3 = Stopwatch.GetTimestamp();
            if (parsed.Items.Count != expected)
                throw new InvalidOperationException($"{phase}: the raw ListPodSandbox gave {parsed.Items.Count} sandboxes, expected {expected}");
            if (i >= 3)
            {
                samples.Add(ms);
                raw.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
                parse.Add(Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds);
            }
            bytes = answer.Length;
            progress.Tick(phase, i + 1, plan.ListCalls + 3);
        }
        var key = phase == "list" ? "list" : "list_recovered";
        _report.Figures[$"{key}_p50_ms"] = samples.P50;
        _report.Figures[$"{key}_bytes_p50_ms"] = raw.P50;
        _report.Figures[$"{key}_client_parse_p50_ms"] = parse.P50;
        _report.Figures[$"{key}_answer_kib"] = bytes / 1024.0;
    }

    /// <summary>ListPodSandbox with the answer left as bytes (the method's real name and request).</summary>
    private static readonly Grpc.Core.Method<ListPodSandboxRequest, byte[]> RawList = new(
        Grpc.Core.MethodType.Unary, "runtime.v1.RuntimeService", "ListPodSandbox",
        Grpc.Core.Marshallers.Create((ListPodSandboxRequest r) => Google.Protobuf.MessageExtensions.ToByteArray(r), ListPodSandboxRequest.Parser.ParseFrom),
        Grpc.Core.Marshallers.Create((byte[] b) => b, b => b));

    private async Task<List<string>> RunManyAsync(int n, string phase)
    {
        var ids = new List<string>(n);
        await InParallelAsync(n, phase, async client =>
        {
            var id = (await client.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Pods.Next() }, deadline: Deadline, cancellationToken: ct)).PodSandboxId;
            lock (ids)
                ids.Add(id);
        });
        return ids;
    }

    private Task RemoveManyAsync(List<string> ids, string phase)
    {
        var queue = new System.Collections.Concurrent.ConcurrentQueue<string>(ids);
        return InParallelAsync(ids.Count, phase, async client =>
        {
            if (!queue.TryDequeue(out var id))
                throw new InvalidOperationException("more removals than sandboxes");
            await client.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id }, deadline: Deadline, cancellationToken: ct);
            await client.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id }, deadline: Deadline, cancellationToken: ct);
        });
    }

    /// <summary>n operations over 4 clients: setting up and tearing down the scale phase, not measured.</summary>
    private Task InParallelAsync(int n, string phase, Func<RuntimeService.RuntimeServiceClient, Task> op) =>
        Clients.InParallelAsync(daemon, 4, n, phase, progress, ct, op);

    private async Task LifecycleAsync(RuntimeService.RuntimeServiceClient client, LifecycleSamples samples, bool withNetwork = false)
    {
        var t0 = Stopwatch.GetTimestamp();
        var id = (await client.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Pods.Next() }, deadline: Deadline, cancellationToken: ct)).PodSandboxId;
        var t1 = Stopwatch.GetTimestamp();
        var status = await client.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id }, deadline: Deadline, cancellationToken: ct);
        var t2 = Stopwatch.GetTimestamp();
        if (status.Status.State != PodSandboxState.SandboxReady)
            throw new InvalidOperationException($"sandbox {id} is {status.Status.State} right after RunPodSandbox");
        if (withNetwork != (status.Status.Network.Ip.Length > 0))
            throw new InvalidOperationException($"sandbox {id} has the pod IP \"{status.Status.Network.Ip}\"; the run expected {(withNetwork ? "one" : "none")}");
        await client.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id }, deadline: Deadline, cancellationToken: ct);
        var t3 = Stopwatch.GetTimestamp();
        await client.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id }, deadline: Deadline, cancellationToken: ct);
        var t4 = Stopwatch.GetTimestamp();
        samples.Run.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
        samples.Status.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
        samples.Stop.Add(Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds);
        samples.Remove.Add(Stopwatch.GetElapsedTime(t3, t4).TotalMilliseconds);
    }

    /// <summary>VmHWM is the process's own peak; each daemon process is sampled before it stops.</summary>
    private void SamplePeak() => _peakKiB = Math.Max(_peakKiB, daemon.StatusKiB("VmHWM"));

    private sealed class LifecycleSamples
    {
        public Samples Run { get; } = new();
        public Samples Status { get; } = new();
        public Samples Stop { get; } = new();
        public Samples Remove { get; } = new();

        public IEnumerable<(string Call, Samples Samples)> ByCall =>
            [("run", Run), ("status", Status), ("stop", Stop), ("remove", Remove)];
    }
}
