using System.Text.Json;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>`crictl info` (Status verbose): the conditions, the configuration and what the runtime runs on.</summary>
public sealed class StatusInfoTests
{
    [Fact]
    public async Task Status_shows_the_pod_network_the_cgroup_layout_the_event_stream_and_the_handlers()
    {
        await using var d = await DaemonProcess.StartAsync("--runtime-handlers", "fast");
        var status = await d.Runtime.StatusAsync(new StatusRequest { Verbose = true });
        Assert.Equal(["RuntimeReady", "NetworkReady"], status.Status.Conditions.Select(c => c.Type));
        Assert.Equal(["", "fast"], status.RuntimeHandlers.Select(h => h.Name));
        Assert.All(status.RuntimeHandlers, h => Assert.False(h.Features.RecursiveReadOnlyMounts));

        // Each is one JSON document (crictl shows a value that is not JSON as a plain string, as podCIDR is).
        foreach (var key in new[] { "config", "cni", "cgroups", "events", "reservedNames" })
            JsonDocument.Parse(status.Info[key]).Dispose();
        Assert.Equal(d.StateDir, JsonDocument.Parse(status.Info["config"]).RootElement.GetProperty("state-dir").GetString());

        using var cgroups = JsonDocument.Parse(status.Info["cgroups"]);
        var mode = cgroups.RootElement.GetProperty("mode").GetString();
        var unified = File.ReadAllLines("/proc/self/mountinfo").Any(l => l.Split(' ')[4] == "/sys/fs/cgroup" && l.Contains(" - cgroup2 "));
        Assert.Equal(unified ? "v2" : Directory.Exists("/sys/fs/cgroup/unified") ? "hybrid" : "v1", mode);
        Assert.Equal(unified ? "v2" : "v1", cgroups.RootElement.GetProperty("runcManager").GetString());
        if (!unified)
            Assert.Equal("/sys/fs/cgroup/memory", cgroups.RootElement.GetProperty("v1Controllers").GetProperty("memory").GetString());

        using var events = JsonDocument.Parse(status.Info["events"]);
        Assert.Equal(0, events.RootElement.GetProperty("subscribers").GetInt32());

        using (var cni = JsonDocument.Parse(status.Info["cni"]))
        {
            Assert.False(cni.RootElement.GetProperty("ready").GetBoolean());
            Assert.Equal(JsonValueKind.Null, cni.RootElement.GetProperty("network").ValueKind);
        }

        // A network config appears in the folder: info names it and its plugin chain (nothing runs until a pod does).
        var confDir = Path.Combine(d.Dir, "net.d");
        Directory.CreateDirectory(confDir);
        File.WriteAllText(Path.Combine(confDir, "10-test.conflist"), """
            {"cniVersion": "1.0.0", "name": "info-net", "plugins": [
              {"type": "bridge", "bridge": "cridinfo0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.199.250.0/24"}]]}},
              {"type": "portmap", "capabilities": {"portMappings": true}}]}
            """);
        status = await d.Runtime.StatusAsync(new StatusRequest { Verbose = true });
        using (var cni = JsonDocument.Parse(status.Info["cni"]))
        {
            Assert.True(cni.RootElement.GetProperty("ready").GetBoolean());
            Assert.Equal("info-net", cni.RootElement.GetProperty("network").GetString());
            Assert.Equal(Path.Combine(confDir, "10-test.conflist"), cni.RootElement.GetProperty("file").GetString());
            Assert.Equal(["bridge", "portmap"], cni.RootElement.GetProperty("plugins").EnumerateArray().Select(p => p.GetString()));
        }
        Assert.True(status.Status.Conditions.Single(c => c.Type == "NetworkReady").Status);
    }
}
