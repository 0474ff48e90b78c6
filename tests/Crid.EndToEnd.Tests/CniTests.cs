using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// Pod networking through Debian's CNI plugins (/usr/lib/cni), through the real daemon. Each test owns
/// a bridge (cridt + 4 hex) and a subnet 10.199.N.0/24 used only inside its own pods' namespaces;
/// host-local keeps its store in the test's temp folder. No traffic leaves 127.0.0.0/8 and that subnet.
/// One class, so the tests never run at the same time and the iptables cleanup sees only its own rules.
/// </summary>
[Collection(HostNatCollection.Name)]
public sealed class CniTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string PluginDir = "/usr/lib/cni";

    [Fact]
    public async Task Without_a_network_pods_get_loopback_only_and_Status_says_why()
    {
        await using var d = await DaemonProcess.StartAsync();
        var confDir = Path.Combine(d.Dir, "net.d");
        var network = await NetworkCondition(d);
        Assert.False(network.Status);
        Assert.Equal("NetworkPluginNotReady", network.Reason);
        Assert.Contains(confDir, network.Message);

        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("lo-only") })).PodSandboxId;
        var status = (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status;
        Assert.Equal(PodSandboxState.SandboxReady, status.State);
        Assert.Equal("", status.Network.Ip);
        Assert.Empty(status.Network.AdditionalIps);
        var netns = Directory.EnumerateFiles(Path.Combine(d.NamespacesDir, "netns")).Single();
        var links = Tool.Run("nsenter", $"--net={netns}", "ip", "-o", "link", "show").Stdout;
        Assert.Equal("lo", Assert.Single(links.Split('\n', StringSplitOptions.RemoveEmptyEntries)).Split(':')[1].Trim());
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });

        // A folder with only broken files is still no network, and says so.
        Directory.CreateDirectory(confDir);
        File.WriteAllText(Path.Combine(confDir, "10-broken.conflist"), "{\"cniVersion\": \"1.0.0\", \"name\": \"x\"");
        network = await NetworkCondition(d);
        Assert.False(network.Status);
        Assert.Contains("1 invalid", network.Message);
        await Logged(d, "skipped the CNI config " + Path.Combine(confDir, "10-broken.conflist"));

        // UpdateRuntimeConfig keeps the pod CIDR; a malformed one is InvalidArgument naming the field.
        await d.Runtime.UpdateRuntimeConfigAsync(PodCidr("10.244.3.0/24,fd00:10:244:3::/64"));
        Assert.Equal("10.244.3.0/24,fd00:10:244:3::/64", (await d.Runtime.StatusAsync(new StatusRequest { Verbose = true })).Info["podCIDR"]);
        var bad = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.UpdateRuntimeConfigAsync(PodCidr("10.244.3.7/33")).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
        Assert.Contains("runtime_config.network_config.pod_cidr", bad.Status.Detail);
        Assert.Equal("10.244.3.0/24,fd00:10:244:3::/64", (await d.Runtime.StatusAsync(new StatusRequest { Verbose = true })).Info["podCIDR"]);
        await d.Runtime.UpdateRuntimeConfigAsync(PodCidr(""));
        Assert.Equal("", (await d.Runtime.StatusAsync(new StatusRequest { Verbose = true })).Info["podCIDR"]);
    }

    [Fact]
    public async Task Pods_get_addresses_reach_each_other_and_a_host_port_and_give_them_back()
    {
        await using var net = new TestNetwork();
        await using var d = await DaemonProcess.StartAsync(net.DaemonArgs(PluginDir));
        try
        {
            // The network appears after the daemon started, behind a broken file that sorts first.
            Assert.False((await NetworkCondition(d)).Status);
            File.WriteAllText(Path.Combine(net.ConfDir, "05-broken.conf"), "not json");
            net.WriteConflist("10-crid-test.conflist", net.Bridge(), net.Portmap());
            var ready = await NetworkCondition(d);
            Assert.True(ready.Status, ready.Message);
            Assert.Contains(net.Name, ready.Message);
            Assert.Contains("10-crid-test.conflist", ready.Message);
            await Logged(d, "skipped the CNI config " + Path.Combine(net.ConfDir, "05-broken.conf"));

            var hostPort = FreePort();
            var configA = SandboxTests.Minimal("web");
            configA.PortMappings.Add(new PortMapping { Protocol = Protocol.Tcp, ContainerPort = 80, HostPort = hostPort });
            var a = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = configA })).PodSandboxId;
            var b = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("client") })).PodSandboxId;

            var ipA = await PodIp(d, a);
            var ipB = await PodIp(d, b);

            // Network NODE has no namespace of its own to attach: CNI is skipped.
            var hostConfig = SandboxTests.Minimal("on-host");
            hostConfig.Linux.SecurityContext.NamespaceOptions.Network = NamespaceMode.Node;
            var onHost = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = hostConfig })).PodSandboxId;
            Assert.Equal("", (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = onHost })).Status.Network.Ip);
            Assert.Equal(2, net.ReservedIps().Count);
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = onHost });
            Assert.NotEqual(ipA, ipB);
            Assert.True(net.Subnet.Contains(IPAddress.Parse(ipA)), ipA);
            Assert.True(net.Subnet.Contains(IPAddress.Parse(ipB)), ipB);
            Assert.Equal([ipA, ipB], net.ReservedIps().Order());
            Assert.Equal(2, net.HostVeths().Count);
            // Status and Run share one view of the folder: read once, when it changed, not once per caller.
            await Logged(d, $"pod network {net.Name} from");
            Assert.Single(System.Text.RegularExpressions.Regex.Matches(d.Stderr, $"pod network {net.Name} from"));
            var pinA = await NetPin(d, a);
            var pinB = await NetPin(d, b);
            Assert.Contains($"inet {ipA}/24", Tool.Run("nsenter", $"--net={pinA}", "ip", "-o", "addr", "show", "dev", "eth0").Stdout);

            // Pod to pod across the bridge, both ways.
            Tool.Run("nsenter", $"--net={pinB}", "busybox", "ping", "-c", "1", "-W", "2", ipA);
            Tool.Run("nsenter", $"--net={pinA}", "busybox", "ping", "-c", "1", "-W", "2", ipB);

            // Host port: 127.0.0.1:<hostPort> reaches port 80 inside pod A through portmap.
            Assert.Contains(a, Tool.Run("iptables-save", "-t", "nat").Stdout);
            Assert.Equal("hello from the host", await SendThroughHostPort(pinA, hostPort, "hello from the host"));

            // The addresses survive a daemon restart.
            await d.StopAsync();
            await d.RestartAsync(net.DaemonArgs(PluginDir));
            Assert.Equal(ipA, await PodIp(d, a));
            Assert.Equal(ipB, await PodIp(d, b));

            // Stop gives everything back: addresses, veths, portmap's rules.
            await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = a });
            Assert.Equal([ipB], net.ReservedIps());
            Assert.Single(net.HostVeths());
            Assert.DoesNotContain(a, Tool.Run("iptables-save", "-t", "nat").Stdout);
            await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = b });
            await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = b });
            Assert.Empty(net.ReservedIps());
            Assert.Empty(net.HostVeths());
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = a });
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = b });
            Assert.Empty(Cleanup.NsfsMountsUnder(d.NamespacesDir));
            Assert.DoesNotContain("RemovePodSandbox will retry", d.Stderr);
        }
        finally
        {
            await RemoveAllPods(d);
        }
    }

    [Theory]
    [InlineData("fail", "boom from the fake plugin")]
    [InlineData("hang", "did not finish ADD within 2 s and was killed")]
    public async Task A_plugin_that_fails_or_hangs_fails_the_call_and_leaves_nothing_behind(string fake, string expected)
    {
        await using var net = new TestNetwork();
        var bin = net.FakeBin;
        // Fakes as tiny shell scripts: "fail" answers ADD with a CNI error object; "hang" never answers
        // ADD (from a child process, which must die with it). Both accept DEL, as a real plugin would.
        // The sleep's length is this run's own: other checkouts run this test on the same machine.
        var sleepSeconds = 3600 + RandomNumberGenerator.GetInt32(1_000_000);
        net.WriteFakePlugin("fail",
            "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then\n  echo 'fake plugin stderr line' >&2\n" +
            "  printf '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"boom from the fake plugin\"}'\n  exit 1\nfi\nexit 0\n");
        net.WriteFakePlugin("hang",
            $"#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then sleep {sleepSeconds}; fi\nexit 0\n");

        net.WriteConflist("10-crid-test.conflist", net.Bridge(), new JsonObject { ["type"] = fake });
        await using var d = await DaemonProcess.StartAsync([.. net.DaemonArgs($"{bin},{PluginDir}"), "--cni-timeout", "2"]);
        try
        {
            Assert.True((await NetworkCondition(d)).Status);
            var e = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("doomed") }).ResponseAsync);
            Assert.Equal(StatusCode.Unknown, e.StatusCode);
            Assert.Contains(expected, e.Status.Detail);
            Assert.Contains($"network \"{net.Name}\"", e.Status.Detail);
            if (fake == "fail")
                Assert.Contains("fake plugin stderr line", e.Status.Detail);

            // Nothing behind: no pin, no state, no address, no veth, no plugin process.
            Assert.Empty(Cleanup.NsfsMountsUnder(d.NamespacesDir));
            Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "sandboxes")));
            Assert.Empty((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
            Assert.Empty(net.ReservedIps());
            Assert.Empty(net.HostVeths());
            Assert.False(SleepRunning(sleepSeconds), "the hanging plugin's child outlived it");

            // No name is kept: the same pod runs once the network is fixed (picked up without a restart).
            net.WriteConflist("10-crid-test.conflist", net.Bridge());
            var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("doomed") })).PodSandboxId;
            Assert.True(net.Subnet.Contains(IPAddress.Parse(await PodIp(d, id))));
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
            Assert.Empty(net.ReservedIps());
            Assert.Empty(net.HostVeths());
        }
        finally
        {
            await RemoveAllPods(d);
        }
    }

    [Fact]
    public async Task A_failed_DEL_is_owed_across_a_restart_and_Remove_retries_it()
    {
        await using var net = new TestNetwork();
        var bin = net.FakeBin;
        var fixedMarker = Path.Combine(net.Dir, "del-works");
        // First in the list, so its ADD result is a bare one bridge accepts as prevResult, and last on
        // DEL (reverse order), after bridge's; its DEL fails until the marker exists.
        net.WriteFakePlugin("delfail",
            "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then printf '{\"cniVersion\":\"1.0.0\"}'; exit 0; fi\n" +
            $"if [ \"$CNI_COMMAND\" = DEL ] && [ ! -e '{fixedMarker}' ]; then printf '{{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"DEL refused by the fake\"}}'; exit 1; fi\nexit 0\n");
        net.WriteConflist("10-crid-test.conflist", new JsonObject { ["type"] = "delfail" }, net.Bridge());
        string[] args = [.. net.DaemonArgs($"{bin},{PluginDir}")];
        await using var d = await DaemonProcess.StartAsync(args);
        try
        {
            var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("owed") })).PodSandboxId;
            Assert.True(net.Subnet.Contains(IPAddress.Parse(await PodIp(d, id))));

            // Stop succeeds; bridge's DEL came first and gave the address back, the fake's failure is owed.
            await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
            Assert.Empty(net.ReservedIps());
            Assert.Empty(Cleanup.NsfsMountsUnder(d.NamespacesDir));
            await Logged(d, "RemovePodSandbox will retry");
            Assert.True(await StillAttached(d, id));

            await d.StopAsync();
            await d.RestartAsync(args);
            Assert.True(await StillAttached(d, id));
            var e = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id }).ResponseAsync);
            Assert.Equal(StatusCode.Unknown, e.StatusCode);
            Assert.Contains("DEL refused by the fake", e.Status.Detail);
            Assert.Single((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);

            File.WriteAllText(fixedMarker, "");
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
            Assert.Empty((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
            Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "sandboxes")));
        }
        finally
        {
            await RemoveAllPods(d);
        }
    }

    [Fact]
    public async Task A_sandbox_that_lost_its_pins_while_the_daemon_was_down_gets_its_DEL_at_start()
    {
        await using var net = new TestNetwork();
        net.WriteConflist("10-crid-test.conflist", net.Bridge());
        string[] args = [.. net.DaemonArgs(PluginDir)];
        await using var d = await DaemonProcess.StartAsync(args);
        try
        {
            // pid CONTAINER: no infra process, so once the pins go nothing holds the network namespace.
            var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("lost", NamespaceMode.Container) })).PodSandboxId;
            var ip = await PodIp(d, id);
            Assert.Equal([ip], net.ReservedIps());
            await d.KillAsync();
            foreach (var pin in Cleanup.NsfsMountsUnder(d.NamespacesDir))
            {
                Tool.Run("umount", pin);
                File.Delete(pin);
            }

            await d.RestartAsync(args);
            await Logged(d, $"sandbox {id} lost its pins");
            var status = (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status;
            Assert.Equal(PodSandboxState.SandboxNotready, status.State);
            Assert.Empty(net.ReservedIps());
            Assert.False(await StillAttached(d, id));
            // The kernel tears a namespace down asynchronously once its last reference is gone.
            var deadline = Stopwatch.StartNew();
            while (net.HostVeths().Count > 0 && deadline.Elapsed < TimeSpan.FromSeconds(10))
                await Task.Delay(50);
            Assert.Empty(net.HostVeths());
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        }
        finally
        {
            await RemoveAllPods(d);
        }
    }

    [Fact]
    public async Task A_network_whose_plugins_are_missing_is_skipped_and_Status_names_the_plugin_and_folder()
    {
        await using var net = new TestNetwork();
        net.WriteConflist("10-crid-test.conflist", net.Bridge(), new JsonObject { ["type"] = "not-installed-crid" });
        await using var d = await DaemonProcess.StartAsync(net.DaemonArgs(PluginDir));
        try
        {
            var network = await NetworkCondition(d);
            Assert.False(network.Status);
            Assert.Contains($"plugin \"not-installed-crid\" is not installed in {PluginDir}", network.Message);
            Assert.Contains("10-crid-test.conflist", network.Message);
            // Pods still run, with loopback only, rather than failing every Run on a plugin that is not there.
            var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("lo") })).PodSandboxId;
            Assert.Equal("", (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status.Network.Ip);
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });

            // The next valid file is used.
            net.WriteConflist("20-crid-test.conflist", net.Bridge());
            Assert.True((await NetworkCondition(d)).Status);
            Assert.Contains("20-crid-test.conflist", (await NetworkCondition(d)).Message);
        }
        finally
        {
            await RemoveAllPods(d);
        }
    }

    [Fact]
    public async Task A_Run_the_client_gave_up_on_is_finished_and_its_retry_gets_the_sandbox()
    {
        await using var net = new TestNetwork();
        var bin = net.FakeBin;
        // A plugin that takes its time, as bridge does on a loaded node, then succeeds.
        net.WriteFakePlugin("slow",
            "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then sleep 1.5; printf '{\"cniVersion\":\"1.0.0\"}'; fi\nexit 0\n");
        net.WriteConflist("10-crid-test.conflist", new JsonObject { ["type"] = "slow" });
        await using var d = await DaemonProcess.StartAsync(net.DaemonArgs($"{bin},{PluginDir}"));
        try
        {
            var config = SandboxTests.Minimal("patient");
            var gaveUp = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }, deadline: DateTime.UtcNow.AddMilliseconds(300)).ResponseAsync);
            Assert.Equal(StatusCode.DeadlineExceeded, gaveUp.StatusCode);
            // kubelet's retry: the same config, while the first is still at work; it joins it.
            var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
            var only = Assert.Single((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
            Assert.Equal(id, only.Id);
            Assert.Equal(PodSandboxState.SandboxReady, only.State);
            // Handed out once: a later Run of the same name is a duplicate.
            var dup = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }).ResponseAsync);
            Assert.Equal(StatusCode.AlreadyExists, dup.StatusCode);

            // A retry that comes after the work finished collects it too.
            var later = SandboxTests.Minimal("later");
            await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = later }, deadline: DateTime.UtcNow.AddMilliseconds(300)).ResponseAsync);
            await Task.Delay(2500);
            var laterId = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = later })).PodSandboxId;
            Assert.Equal(2, (await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items.Count);
            Assert.Contains(laterId, (await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items.Select(p => p.Id));
        }
        finally
        {
            await RemoveAllPods(d);
        }
    }

    /// <summary>
    /// A node's first burst of pods: plugins set up shared host state on their first ADD, and Debian's
    /// portmap does it unsafely when several first ADDs race (its CNI-HOSTPORT-* chains on iptables-nft).
    /// The fake plugin fails an ADD that finds another one mid-way through that set-up. Until one ADD on
    /// the config has succeeded they go one at a time; after that, the burst's ADDs run together.
    /// </summary>
    [Fact]
    public async Task The_first_ADD_on_a_network_runs_alone_and_the_rest_of_the_burst_runs_together()
    {
        await using var net = new TestNetwork();
        var marks = Path.Combine(net.Dir, "marks");
        Directory.CreateDirectory(marks);
        net.WriteFakePlugin("firstsetup",
            "#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\n" +
            $"cd '{marks}'\n" +
            "if [ ! -e ready ]; then\n" +
            "  mkdir busy 2>/dev/null || { printf '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"another ADD is mid-way through the first set-up\"}'; exit 1; }\n" +
            "  sleep 0.3; touch ready; rmdir busy\n" +
            "else\n" +
            "  touch in.$$; sleep 1; ls in.* | wc -l > most.$$; rm in.$$\n" +
            "fi\nprintf '{\"cniVersion\":\"1.0.0\"}'\n");
        net.WriteConflist("10-crid-test.conflist", new JsonObject { ["type"] = "firstsetup" });
        await using var d = await DaemonProcess.StartAsync(net.DaemonArgs($"{net.FakeBin},{PluginDir}"));
        try
        {
            Assert.True((await NetworkCondition(d)).Status);
            var runs = Enumerable.Range(0, 8).Select(i => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal($"burst-{i}") }).ResponseAsync).ToList();
            var ids = (await Task.WhenAll(runs)).Select(r => r.PodSandboxId).ToList();
            Assert.Equal(8, ids.Distinct().Count());
            // Seven ADDs came after the set-up; they ran side by side, not one by one.
            var overlaps = Directory.GetFiles(marks, "most.*").Select(f => int.Parse(File.ReadAllText(f).Trim())).ToList();
            Assert.Equal(7, overlaps.Count);
            Assert.True(overlaps.Max() > 1, $"the ADDs after the first ran one at a time: {string.Join(", ", overlaps)}");
        }
        finally
        {
            await RemoveAllPods(d);
        }
    }

    /// <summary>
    /// kubelet's load on a node: many clients at once, each a full lifecycle on the pod network (bridge
    /// and portmap, a host port per pod). Every call must succeed: a plugin's output is never lost to a
    /// starved thread pool, and nothing is left behind. The figures are printed for the report.
    /// </summary>
    [Fact]
    public async Task Sixteen_clients_run_pod_lifecycles_on_a_bridge_network_without_an_error()
    {
        const int Clients = 16;
        var lifecycles = int.TryParse(Environment.GetEnvironmentVariable("CRID_LOAD_LIFECYCLES"), out var n) ? n : 160;
        await using var net = new TestNetwork();
        net.WriteConflist("10-crid-test.conflist", net.Bridge(), net.Portmap());
        await using var d = await DaemonProcess.StartAsync([.. net.DaemonArgs(PluginDir), "--log-level", "info"]);
        var runs = new System.Collections.Concurrent.ConcurrentBag<double>();
        var errors = new System.Collections.Concurrent.ConcurrentBag<string>();
        var next = -1;
        try
        {
            var watch = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
            {
                using var channel = DaemonProcess.CreateChannel(d.Socket);
                var client = new RuntimeService.RuntimeServiceClient(channel);
                int i;
                while ((i = Interlocked.Increment(ref next)) < lifecycles)
                {
                    try
                    {
                        var config = SandboxTests.Minimal($"load-{i}", i % 4 == 0 ? NamespaceMode.Pod : NamespaceMode.Container);
                        config.PortMappings.Add(new PortMapping { Protocol = Protocol.Tcp, ContainerPort = 80, HostPort = 20000 + i, HostIp = "127.0.0.1" });
                        var t0 = Stopwatch.GetTimestamp();
                        var id = (await client.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
                        runs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                        var status = (await client.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status;
                        if (status.State != PodSandboxState.SandboxReady || status.Network.Ip.Length == 0)
                            errors.Add($"{id}: {status.State}, ip \"{status.Network.Ip}\"");
                        await client.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
                        await client.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
                    }
                    catch (RpcException e)
                    {
                        errors.Add($"lifecycle {i}: {e.StatusCode}: {e.Status.Detail}");
                    }
                }
            })));
            var sorted = runs.Order().ToArray();
            var p50 = sorted[sorted.Length / 2];
            var p99 = sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(sorted.Length * 0.99) - 1)];
            output.WriteLine($"CNI load: {lifecycles} lifecycles by {Clients} clients in {watch.Elapsed.TotalSeconds:F1} s, RunPodSandbox p50 {p50:F1} ms, p99 {p99:F1} ms, {errors.Count} errors");
            Assert.True(errors.IsEmpty, string.Join('\n', errors));
            Assert.Equal(lifecycles, runs.Count);
            Assert.Empty(net.ReservedIps());
            Assert.Empty(net.HostVeths());
            Assert.Empty(Cleanup.NsfsMountsUnder(d.NamespacesDir));
            Assert.DoesNotContain("failed unexpectedly", d.Stderr);
        }
        finally
        {
            await RemoveAllPods(d);
        }
    }

    /// <summary>
    /// The crash window between CNI ADD and the sandbox's record: the daemon SIGKILLs itself right
    /// after ADD (TestCrash), which leaves a veth on the bridge, an address in host-local's store and
    /// portmap's DNAT rules that no record mentions. The next start DELs them from the intent Run wrote
    /// before the ADD; a pod that was there all along keeps its network.
    /// </summary>
    [Fact]
    public async Task A_Run_killed_after_CNI_ADD_leaves_no_network_after_the_restart()
    {
        await using var net = new TestNetwork();
        await using var d = await DaemonProcess.StartAsync(net.DaemonArgs(PluginDir));
        try
        {
            net.WriteConflist("10-crid-test.conflist", net.Bridge(), net.Portmap());
            Assert.True((await NetworkCondition(d)).Status);
            var keep = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("keep") })).PodSandboxId;
            var keepIp = await PodIp(d, keep);
            var keepPin = await NetPin(d, keep);
            var keepPins = Leaks.PinFiles(d.NamespacesDir);

            await d.StopAsync();
            d.Environment[Crid.Core.Configuration.TestCrash.EnvironmentVariable] = Crid.Core.Configuration.TestCrash.RunAfterCniAdd;
            await d.RestartAsync(net.DaemonArgs(PluginDir));
            var hostPort = FreePort();
            var config = SandboxTests.Minimal("cut-short");
            config.PortMappings.Add(new PortMapping { Protocol = Protocol.Tcp, ContainerPort = 80, HostPort = hostPort });
            await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }).ResponseAsync);
            await WaitExited(d);

            // What the kill left: without the intent, nothing would say these exist.
            var orphanId = Directory.EnumerateFiles(Path.Combine(d.StateDir, "pins"))
                .Select(f => JsonDocument.Parse(File.ReadAllText(f)).RootElement.GetProperty("sandbox").GetString()!)
                .Single(id => id != keep);
            Assert.Equal(2, net.ReservedIps().Count);
            Assert.Equal(2, net.HostVeths().Count);
            Assert.Contains($"--dport {hostPort}", Tool.Run("iptables-save", "-t", "nat").Stdout);
            Assert.False(File.Exists(Path.Combine(d.StateDir, "sandboxes", orphanId, Crid.Core.Sandboxes.SandboxRecord.FileName)));

            d.Environment.Clear();
            await d.RestartAsync(net.DaemonArgs(PluginDir));
            await Logged(d, $"released the pod network {net.Name} of sandbox {orphanId}");
            Assert.Equal([keepIp], net.ReservedIps());
            Assert.Single(net.HostVeths());
            var nat = Tool.Run("iptables-save", "-t", "nat").Stdout;
            Assert.DoesNotContain($"--dport {hostPort}", nat);
            Assert.DoesNotContain(orphanId, nat);
            Assert.Equal(keep, Assert.Single((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items).Id);
            Assert.Equal(keepPins, Leaks.PinFiles(d.NamespacesDir));
            Assert.Single(Directory.EnumerateFiles(Path.Combine(d.StateDir, "pins")));
            Assert.Equal(keep, Assert.Single(await Leaks.ReservedNamesAsync(d)).Value);
            Assert.Contains($"inet {keepIp}/24", Tool.Run("nsenter", $"--net={keepPin}", "ip", "-o", "addr", "show", "dev", "eth0").Stdout);

            // The name, the address range and the host port are free again: the same pod runs and maps it.
            var again = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
            Assert.Equal(2, net.ReservedIps().Count);
            Assert.Contains($"--dport {hostPort}", Tool.Run("iptables-save", "-t", "nat").Stdout);
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = again });
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = keep });
            Assert.Empty(net.ReservedIps());
            Assert.Empty(net.HostVeths());
            Assert.DoesNotContain($"--dport {hostPort}", Tool.Run("iptables-save", "-t", "nat").Stdout);
            Assert.Empty(Leaks.PinFiles(d.NamespacesDir));
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(d.StateDir, "pins")));
        }
        finally
        {
            d.Environment.Clear();
            if (d.Process.HasExited)
                await d.RestartAsync(net.DaemonArgs(PluginDir));
            await RemoveAllPods(d);
        }
    }

    /// <summary>
    /// The crash windows of Stop and Remove: a Stop killed after its DEL (the status still said
    /// attached) and a Remove killed after it dropped the pins' uuid record (the record still there).
    /// Each restart converges: after the first, the sandbox is NOTREADY with no pins and no network
    /// left (never READY with its network gone); after the second it is still listed, no stale intent
    /// makes recovery DEL it again, and a Remove finishes the job.
    /// </summary>
    [Fact]
    public async Task Stop_and_Remove_killed_half_way_converge_on_restart()
    {
        await using var net = new TestNetwork();
        await using var d = await DaemonProcess.StartAsync(net.DaemonArgs(PluginDir));
        try
        {
            net.WriteConflist("10-crid-test.conflist", net.Bridge(), net.Portmap());
            Assert.True((await NetworkCondition(d)).Status);
            var hostPort = FreePort();
            var config = SandboxTests.Minimal("stopped-half-way");
            config.PortMappings.Add(new PortMapping { Protocol = Protocol.Tcp, ContainerPort = 80, HostPort = hostPort });
            var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
            var pin = await NetPin(d, id);

            await d.StopAsync();
            d.Environment[Crid.Core.Configuration.TestCrash.EnvironmentVariable] = Crid.Core.Configuration.TestCrash.StopAfterCniDel;
            await d.RestartAsync(net.DaemonArgs(PluginDir));
            await Assert.ThrowsAsync<RpcException>(() => d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id }).ResponseAsync);
            await WaitExited(d);
            // The DEL ran, the pins are still mounted, and the status says NOTREADY (written before the DEL).
            Assert.Empty(net.ReservedIps());
            Assert.Contains(pin, Cleanup.NsfsMountsUnder(d.NamespacesDir));

            d.Environment.Clear();
            await d.RestartAsync(net.DaemonArgs(PluginDir));
            var status = (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status;
            Assert.Equal(PodSandboxState.SandboxNotready, status.State);
            Assert.False(await StillAttached(d, id));
            await Logged(d, $"sandbox {id} is NOTREADY but still holds pins or a network");
            Assert.Empty(Cleanup.NsfsMountsUnder(d.NamespacesDir));
            Assert.Empty(net.HostVeths());
            Assert.DoesNotContain($"--dport {hostPort}", Tool.Run("iptables-save", "-t", "nat").Stdout);

            // The same window in the Remove of a READY pod (Remove stops it first, through the same code).
            var ready = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("removed-half-way") })).PodSandboxId;
            var readyPin = await NetPin(d, ready);
            Assert.Single(net.ReservedIps());
            await d.StopAsync();
            d.Environment[Crid.Core.Configuration.TestCrash.EnvironmentVariable] = Crid.Core.Configuration.TestCrash.StopAfterCniDel;
            await d.RestartAsync(net.DaemonArgs(PluginDir));
            await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = ready }).ResponseAsync);
            await WaitExited(d);
            Assert.Contains(readyPin, Cleanup.NsfsMountsUnder(d.NamespacesDir));
            d.Environment.Clear();
            await d.RestartAsync(net.DaemonArgs(PluginDir));
            Assert.Equal(PodSandboxState.SandboxNotready, (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = ready })).Status.State);
            Assert.False(await StillAttached(d, ready));
            Assert.Empty(Cleanup.NsfsMountsUnder(d.NamespacesDir));
            Assert.Empty(net.ReservedIps());
            Assert.Empty(net.HostVeths());
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = ready });

            // Remove killed after the pins' uuid record went: the sandbox is still there, and goes.
            await d.StopAsync();
            d.Environment[Crid.Core.Configuration.TestCrash.EnvironmentVariable] = Crid.Core.Configuration.TestCrash.RemoveAfterIntentDropped;
            await d.RestartAsync(net.DaemonArgs(PluginDir));
            await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id }).ResponseAsync);
            await WaitExited(d);
            d.Environment.Clear();
            await d.RestartAsync(net.DaemonArgs(PluginDir));
            Assert.Equal(id, Assert.Single((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items).Id);
            Assert.DoesNotContain("released the pod network", d.Stderr);
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
            Assert.Empty((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(d.StateDir, "pins")));
            Assert.Empty(Leaks.PinFiles(d.NamespacesDir));
            Assert.Empty(net.ReservedIps());
        }
        finally
        {
            d.Environment.Clear();
            if (d.Process.HasExited)
                await d.RestartAsync(net.DaemonArgs(PluginDir));
            await RemoveAllPods(d);
        }
    }

    /// <summary>
    /// A daemon killed in the middle of an ADD leaves the plugin running (it is a process of its own);
    /// the next start kills it before the DEL, so it cannot finish its ADD after the cleanup.
    /// </summary>
    [Fact]
    public async Task A_plugin_still_running_the_ADD_of_a_killed_daemon_is_killed_before_the_DEL()
    {
        await using var net = new TestNetwork();
        var bin = net.FakeBin;
        var started = Path.Combine(net.Dir, "add-started");
        var finished = Path.Combine(net.Dir, "add-finished");
        net.WriteFakePlugin("slowadd",
            "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then\n" +
            $"  touch '{started}'; sleep 3; touch '{finished}'\n  printf '{{\"cniVersion\":\"1.0.0\"}}'\nfi\nexit 0\n");
        net.WriteConflist("10-crid-test.conflist", new JsonObject { ["type"] = "slowadd" }, net.Bridge());
        string[] args = [.. net.DaemonArgs($"{bin},{PluginDir}")];
        await using var d = await DaemonProcess.StartAsync(args);
        try
        {
            var run = d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("slow-add") }).ResponseAsync;
            await WaitUntil(() => File.Exists(started), "the plugin's ADD never started");
            await d.KillAsync();
            await Assert.ThrowsAsync<RpcException>(() => run);

            await d.RestartAsync(args);
            await Logged(d, "killed the CNI plugin process");
            await Logged(d, $"released the pod network {net.Name} of sandbox");
            // Past the plugin's sleep: had it lived, it would have finished its ADD by now.
            await Task.Delay(TimeSpan.FromSeconds(4));
            Assert.False(File.Exists(finished), "the orphaned plugin finished its ADD after the restart");
            Assert.Empty((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
            Assert.Empty(net.ReservedIps());
            Assert.Empty(net.HostVeths());
            Assert.Empty(Leaks.PinFiles(d.NamespacesDir));
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(d.StateDir, "pins")));
        }
        finally
        {
            await RemoveAllPods(d);
        }
    }

    private static Task WaitExited(DaemonProcess d) => WaitUntil(() => d.Process.HasExited, "the daemon did not crash at the injected point");

    /// <summary>Polls <paramref name="done"/> until it holds; fails with <paramref name="what"/> after 10 s.</summary>
    private static async Task WaitUntil(Func<bool> done, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!done())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), what);
            await Task.Delay(10);
        }
    }

    /// <summary>
    /// After a failed assertion: Stop and Remove whatever pods are left (their DEL takes portmap's rules
    /// and the addresses with it), then stop the daemon.
    /// </summary>
    private static async Task RemoveAllPods(DaemonProcess d)
    {
        if (!d.Process.HasExited)
        {
            try
            {
                foreach (var pod in (await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items)
                {
                    try { await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id }); }
                    catch (RpcException) { }
                }
            }
            catch (RpcException) { }
        }
        await d.StopAsync();
    }

    private static Task Logged(DaemonProcess d, string text) => d.LoggedAsync(text);

    private static async Task<bool> StillAttached(DaemonProcess d, string id)
    {
        var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true });
        using var info = JsonDocument.Parse(status.Info["info"]);
        return info.RootElement.GetProperty("network").GetProperty("attached").GetBoolean();
    }

    private static bool SleepRunning(int seconds)
    {
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                if (int.TryParse(Path.GetFileName(proc), out _) && File.ReadAllText(Path.Combine(proc, "cmdline")).Contains($"sleep\0{seconds}\0"))
                    return true;
            }
            catch (IOException) { }
        }
        return false;
    }

    private static UpdateRuntimeConfigRequest PodCidr(string cidr) =>
        new() { RuntimeConfig = new RuntimeConfig { NetworkConfig = new NetworkConfig { PodCidr = cidr } } };

    private static async Task<RuntimeCondition> NetworkCondition(DaemonProcess d) =>
        (await d.Runtime.StatusAsync(new StatusRequest())).Status.Conditions.Single(c => c.Type == "NetworkReady");

    private static async Task<string> PodIp(DaemonProcess d, string id)
    {
        var status = (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id })).Status;
        Assert.NotEmpty(status.Network.Ip);
        return status.Network.Ip;
    }

    private static async Task<string> NetPin(DaemonProcess d, string id)
    {
        var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true });
        using var info = JsonDocument.Parse(status.Info["info"]);
        return info.RootElement.GetProperty("pins").GetProperty("net").GetString()!;
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>busybox nc listens on port 80 inside the pod; the host connects to 127.0.0.1:hostPort.</summary>
    private static async Task<string> SendThroughHostPort(string pin, int hostPort, string text)
    {
        using var listener = Tool.Start("nsenter", $"--net={pin}", "busybox", "nc", "-l", "-p", "80");
        try
        {
            await WaitUntil(() => Tool.Run("nsenter", $"--net={pin}", "ss", "-Htln", "sport = :80").Stdout.Contains(":80"), "nc did not listen");
            using (var client = new TcpClient())
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await client.ConnectAsync(IPAddress.Loopback, hostPort, cts.Token);
                await client.GetStream().WriteAsync(Encoding.ASCII.GetBytes(text), cts.Token);
            }
            var received = listener.StandardOutput.ReadToEndAsync();
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await listener.WaitForExitAsync(wait.Token);
            return await received;
        }
        finally
        {
            if (!listener.HasExited)
                listener.Kill();
        }
    }
}

/// <summary>
/// A bridge, subnet and config folder of the test's own, and the cleanup of whatever the plugins left
/// on the host: the bridge, the CNI nat chains that were not there before, and ip_forward (bridge's
/// isGateway turns it on).
/// </summary>
internal sealed class TestNetwork : IAsyncDisposable
{
    // First: what is read below must not change under another checkout's cleanup (see HostNatLock).
    private readonly Crid.Bench.HostNatLock _hostNat = Crid.Bench.HostNatLock.Take(TimeSpan.FromMinutes(10));
    private readonly string _ipForward = File.ReadAllText("/proc/sys/net/ipv4/ip_forward");
    private readonly HashSet<string> _chainsBefore = NatChains();

    public string Dir { get; } = Directory.CreateTempSubdirectory("crid-cni-").FullName;
    public string ConfDir => Path.Combine(Dir, "net.d");
    public string IpamDir => Path.Combine(Dir, "ipam");
    public string BridgeName { get; }
    public string Name { get; }
    public IPNetwork Subnet { get; }

    public TestNetwork()
    {
        var tag = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
        BridgeName = "cridt" + tag;
        Name = "crid-test-" + tag;
        Subnet = IPNetwork.Parse($"10.199.{RandomNumberGenerator.GetInt32(1, 255)}.0/24");
        Directory.CreateDirectory(ConfDir);
    }

    public string[] DaemonArgs(string binDirs) => ["--cni-conf-dir", ConfDir, "--cni-bin-dir", binDirs];

    /// <summary>The folder of the test's fake plugins (shell scripts), put before the real plugins' on the bin path.</summary>
    public string FakeBin => Path.Combine(Dir, "bin");

    /// <summary>Writes an executable fake plugin named <paramref name="name"/> into <see cref="FakeBin"/>.</summary>
    public void WriteFakePlugin(string name, string script)
    {
        Directory.CreateDirectory(FakeBin);
        var path = Path.Combine(FakeBin, name);
        File.WriteAllText(path, script);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public JsonObject Bridge() => new()
    {
        ["type"] = "bridge",
        ["bridge"] = BridgeName,
        ["isGateway"] = true,
        ["ipMasq"] = false,
        ["ipam"] = new JsonObject
        {
            ["type"] = "host-local",
            ["ranges"] = new JsonArray(new JsonArray(new JsonObject { ["subnet"] = Subnet.ToString() })),
            ["dataDir"] = IpamDir,
        },
    };

    public JsonObject Portmap() => new()
    {
        ["type"] = "portmap",
        ["capabilities"] = new JsonObject { ["portMappings"] = true },
        ["snat"] = true,
    };

    public void WriteConflist(string file, params JsonObject[] plugins)
    {
        var list = new JsonObject { ["cniVersion"] = "1.0.0", ["name"] = Name, ["plugins"] = new JsonArray(plugins) };
        var tmp = Path.Combine(ConfDir, "." + file + ".tmp");
        File.WriteAllText(tmp, list.ToJsonString());
        File.Move(tmp, Path.Combine(ConfDir, file), overwrite: true);
    }

    /// <summary>host-local's store: one file per address it handed out, named by the address.</summary>
    public List<string> ReservedIps()
    {
        var dir = Path.Combine(IpamDir, Name);
        return Directory.Exists(dir)
            ? Directory.EnumerateFiles(dir).Select(Path.GetFileName).Where(n => IPAddress.TryParse(n, out _)).Select(n => n!).ToList()
            : [];
    }

    /// <summary>The host ends of pod veths: the interfaces enslaved to the test's bridge.</summary>
    public List<string> HostVeths()
    {
        var r = Tool.Run(false, "ip", "-o", "link", "show", "master", BridgeName);
        return r.Exit != 0 ? [] : r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
    }

    private static bool ChainIsEmpty(string chain) =>
        Tool.Run(false, "iptables", "-t", "nat", "-S", chain).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).All(l => l.StartsWith("-N ", StringComparison.Ordinal));

    private static HashSet<string> NatChains() =>
        Tool.Run("iptables-save", "-t", "nat").Stdout.Split('\n')
            .Where(l => l.StartsWith(':')).Select(l => l[1..].Split(' ')[0]).ToHashSet();

    public ValueTask DisposeAsync()
    {
        Tool.Run(false, "ip", "link", "del", BridgeName);
        // portmap leaves its shared CNI-HOSTPORT-* chains (and the jumps to them) behind after the last
        // DEL; a test that failed half-way may leave a pod's CNI-DN-* chain too. Only chains this test
        // saw appear are touched.
        // portmap's CNI-HOSTPORT-* chains are shared by every portmap user on the host (another
        // checkout may run these tests right now): they go only while no pod's DNAT jump is left in
        // CNI-HOSTPORT-DNAT, i.e. nobody else is using them.
        var sharedInUse = NatChains().Contains("CNI-HOSTPORT-DNAT") && !ChainIsEmpty("CNI-HOSTPORT-DNAT");
        var created = NatChains().Where(c => c.StartsWith("CNI-", StringComparison.Ordinal) && !_chainsBefore.Contains(c)
            && !(sharedInUse && c.StartsWith("CNI-HOSTPORT-", StringComparison.Ordinal))).ToList();
        if (created.Count > 0)
        {
            foreach (var line in Tool.Run("iptables-save", "-t", "nat").Stdout.Split('\n'))
            {
                var words = line.Split(' ');
                var jump = Array.IndexOf(words, "-j");
                if (words is ["-A", var chain, ..] && !created.Contains(chain) && jump > 0 && created.Contains(words[jump + 1]))
                    Tool.Run(false, ["iptables", "-t", "nat", "-D", chain, .. Unquote(line[(4 + chain.Length)..])]);
            }
            foreach (var chain in created)
                Tool.Run(false, "iptables", "-t", "nat", "-F", chain);
            foreach (var chain in created)
                Tool.Run(false, "iptables", "-t", "nat", "-X", chain);
        }
        File.WriteAllText("/proc/sys/net/ipv4/ip_forward", _ipForward);
        Directory.Delete(Dir, recursive: true);
        _hostNat.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>iptables-save quotes arguments with spaces (comments); split it back into arguments.</summary>
    private static string[] Unquote(string rule)
    {
        var args = new List<string>();
        var current = new StringBuilder();
        var quoted = false;
        foreach (var c in rule.Trim())
        {
            if (c == '"') { quoted = !quoted; continue; }
            if (c == ' ' && !quoted)
            {
                if (current.Length > 0) { args.Add(current.ToString()); current.Clear(); }
                continue;
            }
            current.Append(c);
        }
        if (current.Length > 0)
            args.Add(current.ToString());
        return args.ToArray();
    }
}

internal static class Tool
{
    public sealed record Result(int Exit, string Stdout, string Stderr);

    public static Result Run(params string[] args) => Run(true, args);

    public static Result Run(bool check, params string[] args)
    {
        using var p = Start(args);
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        var result = new Result(p.ExitCode, stdout, stderr.Result);
        if (check && result.Exit != 0)
            throw new InvalidOperationException($"{string.Join(' ', args)} exited {result.Exit}: {result.Stderr}{result.Stdout}");
        return result;
    }

    public static Process Start(params string[] args)
    {
        var info = new ProcessStartInfo(args[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args[1..])
            info.ArgumentList.Add(a);
        return Process.Start(info)!;
    }
}
