using System.Text.Json.Nodes;
using Crid.Core.Configuration;
using Crid.Core.Networking;
using Crid.Core.Sandboxes;
using Microsoft.Extensions.Logging.Abstractions;
using Google.Protobuf;
using Runtime.V1;

namespace Crid.Core.Tests;

/// <summary>The CNI config folder, network lists and results, and the record's network field: no root needed.</summary>
public sealed class CniConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-cniconf-").FullName;
    private readonly string _bin = Directory.CreateTempSubdirectory("crid-cnibin-").FullName;

    public CniConfigTests()
    {
        // The configs below name bridge only: a folder holding it stands for an install.
        File.WriteAllText(Path.Combine(_bin, "bridge"), "");
    }

    public void Dispose()
    {
        Directory.Delete(_dir, true);
        Directory.Delete(_bin, true);
    }

    private const string Bridge = """{"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"}}""";

    [Fact]
    public void A_conflist_keeps_its_plugins_in_order()
    {
        var n = CniNetwork.Parse("/x/10-a.conflist", $$$"""{"cniVersion": "1.0.0", "name": "pods", "plugins": [{{{Bridge}}}, {"type": "portmap", "capabilities": {"portMappings": true}}]}""");
        Assert.Equal("pods", n.Name);
        Assert.Equal("1.0.0", n.CniVersion);
        Assert.Equal(["bridge", "portmap"], n.Plugins.Select(CniNetwork.TypeOf));
        Assert.False(CniNetwork.HasCapability(n.Plugins[0], "portMappings"));
        Assert.True(CniNetwork.HasCapability(n.Plugins[1], "portMappings"));
        Assert.Equal(n.Json, CniNetwork.FromJson(n.Json).Json);
    }

    [Theory]
    [InlineData("/x/10-a.conf")]
    [InlineData("/x/10-a.json")]
    public void A_single_plugin_conf_is_wrapped_as_a_one_plugin_list(string file)
    {
        var n = CniNetwork.Parse(file, """{"cniVersion": "0.4.0", "name": "single", "type": "bridge", "bridge": "cni0"}""");
        Assert.Equal("single", n.Name);
        Assert.Equal("0.4.0", n.CniVersion);
        Assert.Equal("cni0", Assert.Single(n.Plugins)["bridge"]!.GetValue<string>());
        Assert.Equal("single", JsonNode.Parse(n.Json)!["name"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("a.conflist", "{", "invalid JSON")]
    [InlineData("a.conflist", "[]", "JSON object")]
    [InlineData("a.conflist", """{"cniVersion": "1.0.0", "name": "n", "type": "bridge"}""", "no \"plugins\" list")]
    [InlineData("a.conf", """{"cniVersion": "1.0.0", "name": "n"}""", "no plugin \"type\"")]
    [InlineData("a.conflist", """{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}""", "\"name\" must be a non-empty string")]
    [InlineData("a.conflist", """{"name": "n", "plugins": [{"type": "bridge"}]}""", "\"cniVersion\"")]
    [InlineData("a.conflist", """{"cniVersion": "1.0.0", "name": "n", "plugins": []}""", "non-empty list")]
    [InlineData("a.conflist", """{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../../bin/sh"}]}""", "plugins[0].type")]
    [InlineData("a.conflist", """{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, 3]}""", "plugins[1] is not an object")]
    public void A_broken_file_says_why(string file, string text, string reason) =>
        Assert.Contains(reason, Assert.Throws<FormatException>(() => CniNetwork.Parse("/x/" + file, text)).Message);

    [Fact]
    public void The_first_valid_file_by_name_wins_and_changes_are_seen()
    {
        var dir = new CniConfigDir(_dir, [_bin], NullLogger.Instance);
        Assert.Null(dir.Current().Network);
        Assert.Contains($"no CNI network config in {_dir}", dir.Current().Problem);

        File.WriteAllText(Path.Combine(_dir, "00-broken.conflist"), "{");
        File.WriteAllText(Path.Combine(_dir, "05-ignored.txt"), Wrap("txt"));
        File.WriteAllText(Path.Combine(_dir, "20-later.conflist"), Wrap("later"));
        File.WriteAllText(Path.Combine(_dir, "10-first.conf"), """{"cniVersion": "1.0.0", "name": "first", "type": "bridge"}""");
        var state = dir.Current();
        Assert.Equal("first", state.Network!.Name);
        Assert.Equal(Path.Combine(_dir, "10-first.conf"), state.Network.File);

        File.Delete(Path.Combine(_dir, "10-first.conf"));
        Assert.Equal("later", dir.Current().Network!.Name);

        File.WriteAllText(Path.Combine(_dir, "20-later.conflist"), Wrap("later-changed"));
        Assert.Equal("later-changed", dir.Current().Network!.Name);

        File.Delete(Path.Combine(_dir, "20-later.conflist"));
        Assert.Null(dir.Current().Network);
        Assert.Contains("1 invalid file", dir.Current().Problem);
    }

    [Fact]
    public void A_config_folder_removed_and_made_again_and_a_symlinked_config_are_seen()
    {
        // Between changes a look is one read of an inotify watch; the folder going takes its watch
        // with it, and the looks go back to the fingerprint until a new watch is armed.
        var conf = Directory.CreateDirectory(Path.Combine(_dir, "net.d")).FullName;
        var dir = new CniConfigDir(conf, [_bin], NullLogger.Instance);
        File.WriteAllText(Path.Combine(conf, "10-a.conflist"), Wrap("a"));
        Assert.Equal("a", dir.Current().Network!.Name);
        Assert.Equal("a", dir.Current().Network!.Name);

        Directory.Delete(conf, recursive: true);
        Assert.Null(dir.Current().Network);
        Directory.CreateDirectory(conf);
        File.WriteAllText(Path.Combine(conf, "10-b.conflist"), Wrap("b"));
        Assert.Equal("b", dir.Current().Network!.Name);
        File.WriteAllText(Path.Combine(conf, "05-c.conflist"), Wrap("c"));
        Assert.Equal("c", dir.Current().Network!.Name);

        // A config that is a symlink: its target may change where no watch of ours looks, so the
        // looks keep to the fingerprint (which sees what it saw before the watch).
        var target = Path.Combine(_dir, "elsewhere.conflist");
        File.WriteAllText(target, Wrap("linked"));
        File.Delete(Path.Combine(conf, "05-c.conflist"));
        File.CreateSymbolicLink(Path.Combine(conf, "01-linked.conflist"), target);
        Assert.Equal("linked", dir.Current().Network!.Name);
        Assert.Equal("linked", dir.Current().Network!.Name);
        File.Delete(Path.Combine(conf, "01-linked.conflist"));
        Assert.Equal("b", dir.Current().Network!.Name);
    }

    [Fact]
    public void A_missing_folder_is_named()
    {
        var missing = Path.Combine(_dir, "nope");
        var readiness = new PodNetwork(new CridOptions { CniConfDir = missing }, NullLogger<PodNetwork>.Instance).Readiness();
        Assert.False(readiness.Ready);
        Assert.Equal("NetworkPluginNotReady", readiness.Reason);
        Assert.Contains($"{missing} does not exist", readiness.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("10.244.0.0/16")]
    [InlineData("10.244.0.0/16,fd00::/64")]
    public void A_pod_cidr_is_kept(string cidr)
    {
        var network = new PodNetwork(new CridOptions(), NullLogger<PodNetwork>.Instance);
        network.SetPodCidr(cidr);
        Assert.Equal(cidr, network.PodCidr);
    }

    [Theory]
    [InlineData("10.244.0.0")]
    [InlineData("10.244.0.1/16")]
    [InlineData("10.244.0.0/40")]
    [InlineData("10.244.0.0/16,")]
    [InlineData("pods")]
    public void A_malformed_pod_cidr_names_the_field(string cidr)
    {
        var network = new PodNetwork(new CridOptions(), NullLogger<PodNetwork>.Instance);
        network.SetPodCidr("10.1.0.0/16");
        var e = Assert.Throws<Errors.InvalidArgumentException>(() => network.SetPodCidr(cidr));
        Assert.Equal("runtime_config.network_config.pod_cidr", e.Field);
        Assert.Equal("10.1.0.0/16", network.PodCidr);
    }

    [Fact]
    public void The_pod_interface_addresses_come_first()
    {
        var result = JsonNode.Parse("""
            {"cniVersion": "1.0.0",
             "interfaces": [{"name": "cni0", "mac": "aa"}, {"name": "veth1", "mac": "bb"}, {"name": "eth0", "mac": "cc", "sandbox": "/var/run/netns/x"}],
             "ips": [{"address": "10.22.0.1/16", "interface": 0}, {"address": "10.22.0.5/16", "gateway": "10.22.0.1", "interface": 2},
                     {"address": "fd00::5/64", "interface": 2}, {"address": "192.168.9.9/24"}]}
            """)!.AsObject();
        Assert.Equal(["10.22.0.5", "fd00::5", "10.22.0.1", "192.168.9.9"], CniResult.Ips(result, "eth0"));
    }

    [Fact]
    public void A_legacy_result_gives_its_addresses() =>
        Assert.Equal(["10.1.2.3", "fd00::3"], CniResult.Ips(JsonNode.Parse("""{"cniVersion": "0.2.0", "ip4": {"ip": "10.1.2.3/24"}, "ip6": {"ip": "fd00::3/64"}}""")!.AsObject(), "eth0"));

    [Fact]
    public void A_config_whose_plugins_are_not_all_installed_is_skipped_until_they_are()
    {
        var dir = new CniConfigDir(_dir, [_bin], NullLogger.Instance);
        File.WriteAllText(Path.Combine(_dir, "10-needs-portmap.conflist"),
            $$$"""{"cniVersion": "1.0.0", "name": "with-portmap", "plugins": [{{{Bridge}}}, {"type": "portmap"}]}""");
        File.WriteAllText(Path.Combine(_dir, "20-bridge-only.conflist"), Wrap("bridge-only"));
        Assert.Equal("bridge-only", dir.Current().Network!.Name);

        File.Delete(Path.Combine(_dir, "20-bridge-only.conflist"));
        var state = dir.Current();
        Assert.Null(state.Network);
        Assert.Contains("plugin \"portmap\" is not installed in " + _bin, state.Problem);
        Assert.Contains("10-needs-portmap.conflist", state.Problem);

        // Installing the plugin changes its folder: seen at the next look, without touching the configs.
        Thread.Sleep(10);
        File.WriteAllText(Path.Combine(_bin, "portmap"), "");
        Assert.Equal("with-portmap", dir.Current().Network!.Name);
    }

    [Fact]
    public void A_record_and_its_status_round_trip_and_a_version_1_record_still_reads()
    {
        var config = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "uid" } };
        var attachment = new NetworkAttachment
        {
            NetworkName = "pods", ConfigFile = "/etc/cni/net.d/10.conflist", ConfigJson = Wrap("pods"),
            ResultJson = """{"cniVersion":"1.0.0"}""", Ips = ["10.22.0.5", "fd00::5"], Attached = false,
        };
        var sandbox = new Sandbox
        {
            Id = new string('a', 64),
            Name = "k8s_p_ns_uid_0",
            Config = config,
            CreatedAt = 1,
            RuntimeHandler = "",
            Hostname = "h",
            Uuid = "u",
            Pins = new Dictionary<string, string> { ["net"] = "/run/netns/u" },
            Dir = _dir,
            Status = SandboxRecord.NewStatus(_dir, new SandboxStatus { State = SandboxState.Ready, InfraPid = 42 }),
        };
        sandbox.Status.Save();
        File.WriteAllBytes(Path.Combine(_dir, SandboxRecord.FileName), SandboxRecord.Serialize(sandbox));
        Assert.DoesNotContain("\"network\""u8.ToArray(), File.ReadAllBytes(Path.Combine(_dir, SandboxRecord.StatusFileName)));
        var back = SandboxRecord.Load(_dir);
        Assert.Null(back.Network);
        Assert.Equal(42, back.InfraPid);
        Assert.Equal(SandboxState.Ready, back.State);

        // A status change reaches the file: the next load sees it.
        back.Status.Update(s => s with { State = SandboxState.NotReady, InfraPid = 0, Network = attachment });
        var net = SandboxRecord.Load(_dir).Network!;
        Assert.Equal("pods", net.NetworkName);
        Assert.Equal("/etc/cni/net.d/10.conflist", net.ConfigFile);
        Assert.Equal(Wrap("pods"), net.ConfigJson);
        Assert.Equal("""{"cniVersion":"1.0.0"}""", net.ResultJson);
        Assert.Equal(["10.22.0.5", "fd00::5"], net.Ips);
        Assert.False(net.Attached);

        // Version 1: one file, the status inside; read, then split in two.
        File.Delete(Path.Combine(_dir, SandboxRecord.StatusFileName));
        File.WriteAllText(Path.Combine(_dir, SandboxRecord.FileName), $$"""
            {"version": 1, "id": "{{sandbox.Id}}", "name": "k8s_p_ns_uid_0", "created_at": 1, "state": "READY",
             "runtime_handler": "", "hostname": "h", "uuid": "u", "infra_pid": 7, "pins": {"net": "/run/netns/u"},
             "config": "{{Convert.ToBase64String(config.ToByteArray())}}"}
            """);
        var v1 = SandboxRecord.Load(_dir);
        Assert.Equal(7, v1.InfraPid);
        Assert.Equal(SandboxState.Ready, v1.State);
        Assert.True(File.Exists(Path.Combine(_dir, SandboxRecord.StatusFileName)));
        Assert.Equal(7, SandboxRecord.Load(_dir).InfraPid);
    }

    private static string Wrap(string name) => $$"""{"cniVersion": "1.0.0", "name": "{{name}}", "plugins": [{{Bridge}}]}""";
}
