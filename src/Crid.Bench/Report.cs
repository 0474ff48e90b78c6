using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Crid.Bench;

/// <summary>The figures of one run, the machine they were measured on, as a table and as JSON.</summary>
internal sealed class Report
{
    /// <summary>Every figure is a positive number: the quick test asserts exactly that.</summary>
    public Dictionary<string, double> Figures { get; } = [];

    /// <summary>Figures that may be zero or negative by nature (noise around a small difference).</summary>
    public Dictionary<string, double> Derived { get; } = [];

    public Dictionary<string, string> Machine { get; } = [];

    /// <summary>The plan's counts the table names (set by <see cref="WriteJson"/>'s caller before <see cref="Table"/>).</summary>
    public Dictionary<string, int> PlanFigures { get; } = [];

    public static Dictionary<string, string> DescribeMachine(string daemon, string loadavg, string? logLevel) => new()
    {
        ["daemon_log_level"] = logLevel ?? "default",
        ["cores"] = Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture),
        ["kernel"] = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(),
        ["cpu"] = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown",
        ["dotnet"] = RuntimeInformation.FrameworkDescription,
        ["daemon"] = daemon,
        ["daemon_build"] = IsAppHost(daemon) ? "JIT" : "AOT",
        ["loadavg_start"] = loadavg,
    };

    /// <summary>
    /// A framework-dependent apphost loads the runtime through libhostfxr.so and names it; a NativeAOT
    /// binary carries its runtime and never does. (A crid.dll beside it could be a stale leftover.)
    /// </summary>
    private static bool IsAppHost(string binary) =>
        File.ReadAllBytes(binary).AsSpan().IndexOf("libhostfxr.so"u8) >= 0;

    public static string LoadAverage() => string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));

    public string Table()
    {
        var f = Figures;
        var t = new StringBuilder();
        int Plan(string key) => PlanFigures.GetValueOrDefault(key);
        string Ms(string key) => f.TryGetValue(key, out var v) || Derived.TryGetValue(key, out v) ? v.ToString("F2", CultureInfo.InvariantCulture) : "-";
        void Row(string a, string b, string c, string d) => t.AppendLine(CultureInfo.InvariantCulture, $"| {a,-54} | {b,9} | {c,9} | {d,9} |");

        t.AppendLine(CultureInfo.InvariantCulture, $"crid benchmark: {Machine["cores"]} cores, {Machine["cpu"]}, kernel {Machine["kernel"]}, {Machine["dotnet"]}, daemon {Machine["daemon_build"]}");
        t.AppendLine(CultureInfo.InvariantCulture, $"load average at start {Machine["loadavg_start"]}, at end {Machine.GetValueOrDefault("loadavg_end", "?")}");
        t.AppendLine();
        Row("latency (ms)", "p50", "p90", "p99");
        Row(new string('-', 54), "---------", "---------", "---------");
        foreach (var (call, name) in new[] { ("run", "RunPodSandbox"), ("status", "PodSandboxStatus"), ("stop", "StopPodSandbox"), ("remove", "RemovePodSandbox") })
            Row($"{name} (sequential)", Ms($"{call}_p50_ms"), Ms($"{call}_p90_ms"), Ms($"{call}_p99_ms"));
        Row("Version, empty (the transport's floor)", Ms("version_p50_ms"), Ms("version_p90_ms"), "");
        Row("floor: PodNamespaces.Create in-process", Ms("floor_create_p50_ms"), "", "");
        Row("floor: Remove() of each pin in-process", Ms("floor_remove_p50_ms"), "", "");
        Row("floor create, a thread per call (no workers)", Ms("floor_create_thread_per_call_p50_ms"), "", "");
        Row("in-process SandboxManager.Run (bench JIT)", Ms("inprocess_run_p50_ms"), "", "");
        Row("in-process SandboxManager.Stop (bench JIT)", Ms("inprocess_stop_p50_ms"), "", "");
        Row("in-process SandboxManager.Remove (bench JIT)", Ms("inprocess_remove_p50_ms"), "", "");
        Row("PullImage busybox (127.0.0.1 docker-registry)", Ms("pull_busybox_p50_ms"), "", "");
        Row("floor: skopeo copy to dir + tar -xzf", Ms("floor_skopeo_tar_p50_ms"), "", "");
        Row("PullImage of the image already present", Ms("pull_present_p50_ms"), "", "");
        Row("floor: its manifest GET alone, kept connection", Ms("floor_manifest_get_p50_ms"), "", "");
        Row("floor: the same GET if not its digest (304)", Ms("floor_manifest_conditional_get_p50_ms"), "", "");
        Row("RunPodSandbox + CreateContainer + StartContainer", Ms("pod_container_start_p50_ms"), Ms("pod_container_start_p90_ms"), "");
        Row("floor: runc create + runc start of the same rootfs", Ms("floor_runc_create_start_p50_ms"), "", "");
        Row("  its RunPodSandbox alone", Ms("pod_container_run_p50_ms"), "", "");
        Row("  its CreateContainer alone", Ms("pod_container_create_p50_ms"), "", "");
        Row("  its StartContainer alone", Ms("pod_container_start_call_p50_ms"), "", "");
        Row("  floor: its runc create alone", Ms("floor_runc_create_p50_ms"), "", "");
        Row("  floor: its runc start alone", Ms("floor_runc_start_p50_ms"), "", "");
        Row("StopContainer + RemoveContainer + StopPod + RemovePod", Ms("teardown_p50_ms"), Ms("teardown_p90_ms"), "");
        Row("floor: runc kill + runc delete + pins removed", Ms("floor_runc_kill_delete_unpin_p50_ms"), "", "");
        Row($"ListContainers, {Plan("container_pods") * Plan("containers_per_pod")} live containers", Ms("list_containers_p50_ms"), Ms("list_containers_p90_ms"), "");
        Row("ListContainerStats, the same", Ms("list_container_stats_p50_ms"), Ms("list_container_stats_p90_ms"), "");
        Row("  its first call (every writable layer walked)", Ms("list_container_stats_first_ms"), "", "");
        Row($"ListPodSandboxStats, the {Plan("container_pods")} pods", Ms("list_pod_sandbox_stats_p50_ms"), Ms("list_pod_sandbox_stats_p90_ms"), "");
        Row($"pod of 2 containers, start to removed, {Plan("container_clients")} clients", Ms("pods2_concurrent_lifecycle_p50_ms"), Ms("pods2_concurrent_lifecycle_p90_ms"), "");
        Row("  of which Run + 2 × (Create + Start)", Ms("pods2_concurrent_start_p50_ms"), "", "");
        Row("sandbox files: temp + rename", Ms("files_atomic_p50_ms"), "", "");
        Row("sandbox files: temp + fsync + rename + dir fsync", Ms("files_fsync_p50_ms"), "", "");
        Row("ExecSync of true, driver in-process (bench JIT)", Ms("execsync_p50_ms"), Ms("execsync_p90_ms"), "");
        Row("floor: runc exec of true", Ms("floor_runc_exec_p50_ms"), "", "");
        Row("ExecSync of true over the daemon's socket (a probe)", Ms("execsync_rpc_p50_ms"), Ms("execsync_rpc_p90_ms"), "");
        Row("floor: runc exec of true, same container", Ms("floor_runc_exec_same_container_p50_ms"), "", "");
        Row("ratio RunPodSandbox / floor create", Ms("ratio_run_to_floor_create"), "", "");
        Row("ratio PullImage / (skopeo copy + tar)", Ms("ratio_pull_to_skopeo_tar"), "", "");
        Row("ratio present pull / its manifest GET", Ms("ratio_pull_present_to_manifest_get"), "", "");
        Row("ratio present pull / the conditional GET", Ms("ratio_pull_present_to_conditional_get"), "", "");
        Row("ratio pod + container start / runc create + start", Ms("ratio_pod_container_to_runc_create_start"), "", "");
        Row("ratio StopPodSandbox / floor remove", Ms("ratio_stop_to_floor_remove"), "", "");
        Row("ratio RunPodSandbox / (floor create + Version)", Ms("ratio_run_to_floor_plus_transport"), "", "");
        Row("ratio StopPodSandbox / (floor remove + Version)", Ms("ratio_stop_to_floor_plus_transport"), "", "");
        Row("ratio teardown / (runc kill + delete + unpin)", Ms("ratio_teardown_to_floor"), "", "");
        Row("ratio ExecSync / runc exec", Ms("ratio_execsync_to_runc_exec"), "", "");
        Row("RunPodSandbox, bridge + portmap network", Ms("net_run_p50_ms"), Ms("net_run_p90_ms"), "");
        Row("StopPodSandbox, bridge + portmap network", Ms("net_stop_p50_ms"), Ms("net_stop_p90_ms"), "");
        Row("floor: the chain's ADD exec'd directly", Ms("floor_cni_add_p50_ms"), "", "");
        Row("floor: the chain's DEL exec'd directly", Ms("floor_cni_del_p50_ms"), "", "");
        Row("ratio Run / (floor create + ADD), network", Ms("ratio_net_run_to_floor"), "", "");
        Row("ratio Stop / (floor remove + DEL), network", Ms("ratio_net_stop_to_floor"), "", "");
        foreach (var key in f.Keys.Where(k => k.StartsWith("net_c", StringComparison.Ordinal) && k.EndsWith("_lifecycles_per_s", StringComparison.Ordinal)))
        {
            var c = key[5..key.IndexOf('_', 5)];
            Row($"Run / Stop, network, {c} clients (p50)", Ms($"net_c{c}_run_p50_ms"), Ms($"net_c{c}_stop_p50_ms"), "");
        }
        Row("ratio ExecSync RPC / runc exec", Ms("ratio_execsync_rpc_to_runc_exec"), "", "");
        foreach (var key in f.Keys.Where(k => k.StartsWith('c') && k.EndsWith("_lifecycles_per_s", StringComparison.Ordinal)))
        {
            var c = key[1..key.IndexOf('_')];
            Row($"RunPodSandbox with {c} client(s)", Ms($"c{c}_run_p50_ms"), Ms($"c{c}_run_p90_ms"), Ms($"c{c}_run_p99_ms"));
        }
        t.AppendLine();
        Row("figure", "value", "", "");
        Row(new string('-', 54), "---------", "", "");
        foreach (var key in f.Keys.Where(k => k.StartsWith('c') && k.EndsWith("_lifecycles_per_s", StringComparison.Ordinal)))
            Row($"lifecycles/s with {key[1..key.IndexOf('_')]} client(s)", Ms(key), "", "");
        foreach (var key in f.Keys.Where(k => k.StartsWith("net_c", StringComparison.Ordinal) && k.EndsWith("_lifecycles_per_s", StringComparison.Ordinal)))
            Row($"network lifecycles/s, {key[5..key.IndexOf('_', 5)]} clients", Ms(key), "", "");
        foreach (var key in f.Keys.Where(k => k.StartsWith("floor_cni_c", StringComparison.Ordinal)))
            Row($"floor: chain lifecycles/s, {key[11..key.IndexOf('_', 11)]} at once", Ms(key), "", "");
        Row($"pods of 2 containers/s, {Plan("container_clients")} clients", Ms("pods2_concurrent_lifecycles_per_s"), "", "");
        Row("ListPodSandbox p50 (ms), all live", Ms("list_p50_ms"), "", "");
        Row("  the same call as bytes, not parsed (ms)", Ms("list_bytes_p50_ms"), "", "");
        Row("  the client's parse of those bytes (ms)", Ms("list_client_parse_p50_ms"), "", "");
        Row("  the answer's size (KiB)", Ms("list_answer_kib"), "", "");
        Row("ListPodSandbox p50 (ms), after restart", Ms("list_recovered_p50_ms"), "", "");
        Row("start-up to first Version (ms), first start", Ms("startup_first_ms"), "", "");
        Row("start-up (ms), nothing to recover", Ms("startup_empty_ms"), "", "");
        Row("start-up (ms), all live sandboxes to recover", Ms("startup_recover_ms"), "", "");
        var live = Plan("container_pods") * Plan("containers_per_pod");
        Row($"restart over {live} live containers (ms)", "Version", "full list", "");
        Row("  SIGTERM, then start: to Version, to ListContainers", Ms("restart_sigterm_live_containers_version_ms"), Ms("restart_sigterm_live_containers_list_ms"), "");
        Row("  SIGKILL, then start: to Version, to ListContainers", Ms("restart_sigkill_live_containers_version_ms"), Ms("restart_sigkill_live_containers_list_ms"), "");
        Row("  floor: the same restart, no container", Ms("restart_empty_containers_version_ms"), Ms("restart_empty_containers_list_ms"), "");
        Row("  ratio to the floor (full list), SIGTERM / SIGKILL", Ms("ratio_restart_sigterm_live_containers_to_empty"), Ms("ratio_restart_sigkill_live_containers_to_empty"), "");
        Row("  RSS 1 s after the last restart (MiB)", Ms("rss_recovered_containers_mib"), "", "");
        Row("RSS idle, fresh, 1 s after start (MiB)", Ms("rss_idle_fresh_mib"), "", "");
        Row("RSS idle, fresh, after its idle trim (MiB)", Ms("rss_idle_fresh_settled_mib"), "", "");
        Row("RSS right after the load lifecycles (MiB)", Ms("rss_after_load_mib"), "", "");
        Row("RSS idle after the load (MiB)", Ms("rss_idle_after_load_mib"), "", "");
        Row("  minus the fresh idle RSS, 1 s (MiB)", Ms("rss_idle_after_load_over_fresh_mib"), "", "");
        Row("  minus the fresh idle RSS, trimmed (MiB)", Ms("rss_idle_after_load_over_settled_mib"), "", "");
        Row("RSS idle, after the lifecycle phases (MiB)", Ms("rss_idle_warm_mib"), "", "");
        Row("RSS with all live sandboxes, 1 s after (MiB)", Ms("rss_live_mib"), "", "");
        Row("RSS with all live sandboxes, idle (MiB)", Ms("rss_live_settled_mib"), "", "");
        Row("RSS per live sandbox (KiB), vs fresh trimmed", Ms("rss_per_sandbox_kib"), "", "");
        Row("RSS per live sandbox (KiB), vs warm idle", Ms("rss_marginal_per_sandbox_kib"), "", "");
        Row("RSS after restart with all live (MiB)", Ms("rss_recovered_mib"), "", "");
        Row("RSS after all removed (MiB)", Ms("rss_after_remove_mib"), "", "");
        Row("RSS before the live containers (MiB)", Ms("rss_before_containers_mib"), "", "");
        Row("RSS with the live containers (MiB)", Ms("rss_live_containers_mib"), "", "");
        Row("  daemon RSS per live container (KiB)", Ms("rss_per_live_container_kib"), "", "");
        Row("  the same per live pod or container (KiB)", Ms("rss_per_live_pod_or_container_kib"), "", "");
        Row("  conmon VmRSS per container (KiB)", Ms("conmon_rss_kib"), "", "");
        Row("  conmon Pss per container (KiB)", Ms("conmon_pss_kib"), "", "");
        Row("  setting up the live containers (s)", Ms("live_containers_setup_s"), "", "");
        Row("RSS right after the container lifecycles (MiB)", Ms("rss_after_container_load_mib"), "", "");
        Row("RSS idle after the container lifecycles (MiB)", Ms("rss_idle_after_container_load_mib"), "", "");
        Row("  minus the fresh idle RSS, 1 s (MiB)", Ms("rss_idle_after_container_load_over_fresh_mib"), "", "");
        Row("RSS peak, VmHWM (MiB)", Ms("rss_peak_mib"), "", "");
        return t.ToString();
    }

    public void WriteJson(string path, Plan plan)
    {
        PlanFigures["container_pods"] = plan.ContainerPods;
        PlanFigures["containers_per_pod"] = plan.ContainersPerPod;
        PlanFigures["container_clients"] = plan.ContainerClients;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteStartObject("machine");
        foreach (var (k, v) in Machine)
            w.WriteString(k, v);
        w.WriteEndObject();
        w.WriteStartObject("plan");
        w.WriteNumber("lifecycles", plan.Lifecycles);
        w.WriteNumber("warmup", plan.Warmup);
        w.WriteString("clients", string.Join(",", plan.Clients));
        w.WriteNumber("concurrent_lifecycles", plan.ConcurrentLifecycles);
        w.WriteNumber("live_sandboxes", plan.LiveSandboxes);
        w.WriteNumber("list_calls", plan.ListCalls);
        w.WriteNumber("floor_iterations", plan.FloorIterations);
        w.WriteNumber("restarts", plan.Restarts);
        w.WriteNumber("network_lifecycles", plan.NetworkLifecycles);
        w.WriteNumber("network_clients", plan.NetworkClients);
        w.WriteNumber("network_concurrent_lifecycles", plan.NetworkConcurrentLifecycles);
        w.WriteNumber("load_lifecycles", plan.LoadLifecycles);
        w.WriteNumber("idle_seconds", plan.IdleSeconds);
        w.WriteNumber("containers", plan.Containers);
        w.WriteNumber("container_pods", plan.ContainerPods);
        w.WriteNumber("containers_per_pod", plan.ContainersPerPod);
        w.WriteNumber("container_clients", plan.ContainerClients);
        w.WriteNumber("container_concurrent_lifecycles", plan.ContainerConcurrentLifecycles);
        w.WriteNumber("container_load_lifecycles", plan.ContainerLoadLifecycles);
        w.WriteEndObject();
        w.WriteStartObject("figures");
        foreach (var (k, v) in Figures)
            w.WriteNumber(k, Math.Round(v, 4));
        w.WriteEndObject();
        w.WriteStartObject("derived");
        foreach (var (k, v) in Derived)
            w.WriteNumber(k, Math.Round(v, 4));
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
