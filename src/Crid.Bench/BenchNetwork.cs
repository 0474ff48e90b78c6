using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Crid.Bench;

/// <summary>
/// The pod network of the network rows: Debian's bridge + host-local + portmap from /usr/lib/cni, on a
/// bridge of the run's own (cridb + 4 hex) with a subnet 10.198.N.0/24 of its own, host-local's store
/// and the config folder under the run's folder. Disposing takes away what the plugins left on the
/// host: the bridge, the nat chains that appeared during the run (portmap's shared CNI-HOSTPORT-*
/// ones only while no one else's pod still uses them) and ip_forward as it was.
/// </summary>
internal sealed class BenchNetwork : IDisposable
{
    public const string BinDir = "/usr/lib/cni";
    // First: what is read below must not change under another run's cleanup (see HostNatLock).
    private readonly HostNatLock _hostNat = HostNatLock.Take(TimeSpan.FromMinutes(10));
    private readonly string _ipForward = File.ReadAllText("/proc/sys/net/ipv4/ip_forward");
    private readonly HashSet<string> _chainsBefore = NatChains();

    public BenchNetwork(string dir)
    {
        var tag = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
        BridgeName = "cridb" + tag;
        Name = "crid-bench-" + tag;
        Subnet = $"10.198.{RandomNumberGenerator.GetInt32(1, 255)}.0/24";
        IpamDir = Path.Combine(dir, "ipam");
        Directory.CreateDirectory(IpamDir);
    }

    public string BridgeName { get; }
    public string Name { get; }
    public string Subnet { get; }
    public string IpamDir { get; }

    /// <summary>Why the network rows cannot run here, or null: the plugins and iptables (portmap's) must exist.</summary>
    public static string? Missing()
    {
        foreach (var plugin in new[] { "bridge", "host-local", "portmap" })
        {
            if (!File.Exists(Path.Combine(BinDir, plugin)))
                return $"{Path.Combine(BinDir, plugin)} is missing (apt-get install containernetworking-plugins)";
        }
        if (!File.Exists("/usr/sbin/iptables") && !File.Exists("/sbin/iptables"))
            return "iptables is missing (portmap needs it)";
        return null;
    }

    public JsonObject Bridge() => new()
    {
        ["type"] = "bridge",
        ["bridge"] = BridgeName,
        ["isGateway"] = true,
        // No masquerade: nothing leaves the subnet, and no rule is left on the host's POSTROUTING.
        ["ipMasq"] = false,
        ["ipam"] = new JsonObject
        {
            ["type"] = "host-local",
            ["ranges"] = new JsonArray(new JsonArray(new JsonObject { ["subnet"] = Subnet })),
            ["dataDir"] = IpamDir,
        },
    };

    public static JsonObject Portmap() => new()
    {
        ["type"] = "portmap",
        ["capabilities"] = new JsonObject { ["portMappings"] = true },
        ["snat"] = true,
    };

    /// <summary>The conflist the daemon reads, written whole (temp + rename) so it never sees half of it.</summary>
    public void WriteConflist(string confDir)
    {
        var list = new JsonObject { ["cniVersion"] = "1.0.0", ["name"] = Name, ["plugins"] = new JsonArray(Bridge(), Portmap()) };
        var tmp = Path.Combine(confDir, ".10-bench.conflist.tmp");
        File.WriteAllText(tmp, list.ToJsonString());
        File.Move(tmp, Path.Combine(confDir, "10-bench.conflist"), overwrite: true);
    }

    /// <summary>
    /// The floor: the same chain exec'd directly, as the CNI spec has a runtime do it, on a netns the
    /// caller pinned: bridge ADD then portmap ADD (given bridge's result and the pod's port mapping);
    /// DEL in reverse order, each given the ADD's result. Returns the milliseconds of ADD and of DEL.
    /// </summary>
    public async Task<(double Add, double Del)> ChainAsync(string netns, CancellationToken ct)
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var ports = new JsonObject
        {
            ["portMappings"] = new JsonArray(new JsonObject { ["hostPort"] = 8080, ["containerPort"] = 80, ["protocol"] = "tcp", ["hostIP"] = "127.0.0.1" }),
        };
        var t0 = Stopwatch.GetTimestamp();
        var bridgeResult = await ExecAsync(Bridge(), "ADD", id, netns, null, null, ct);
        var portmapResult = await ExecAsync(Portmap(), "ADD", id, netns, bridgeResult, ports, ct);
        var t1 = Stopwatch.GetTimestamp();
        await ExecAsync(Portmap(), "DEL", id, netns, portmapResult, ports, ct);
        await ExecAsync(Bridge(), "DEL", id, netns, bridgeResult, null, ct);
        var t2 = Stopwatch.GetTimestamp();
        return (Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds, Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
    }

    private async Task<JsonObject?> ExecAsync(JsonObject plugin, string command, string id, string netns, JsonObject? prevResult, JsonObject? runtimeConfig, CancellationToken ct)
    {
        var type = (string)plugin["type"]!;
        plugin["cniVersion"] = "1.0.0";
        plugin["name"] = Name;
        if (prevResult is not null)
            plugin["prevResult"] = prevResult.DeepClone();
        if (runtimeConfig is not null)
            plugin["runtimeConfig"] = runtimeConfig.DeepClone();
        var info = new ProcessStartInfo(Path.Combine(BinDir, type))
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardInputEncoding = new UTF8Encoding(false),
        };
        info.Environment["CNI_COMMAND"] = command;
        info.Environment["CNI_CONTAINERID"] = id;
        info.Environment["CNI_NETNS"] = netns;
        info.Environment["CNI_IFNAME"] = "eth0";
        info.Environment["CNI_PATH"] = BinDir;
        using var p = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {type}");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.StandardInput.WriteAsync(plugin.ToJsonString());
        p.StandardInput.Close();
        await p.WaitForExitAsync(ct);
        var output = await stdout;
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"CNI {type} {command} exited with {p.ExitCode}: {output} {await stderr}");
        return command == "ADD" ? JsonNode.Parse(output)!.AsObject() : null;
    }

    public void Dispose()
    {
        Tool("ip", "link", "del", BridgeName);
        var sharedInUse = NatChains().Contains("CNI-HOSTPORT-DNAT") && !ChainIsEmpty("CNI-HOSTPORT-DNAT");
        var created = NatChains().Where(c => c.StartsWith("CNI-", StringComparison.Ordinal) && !_chainsBefore.Contains(c)
            && !(sharedInUse && c.StartsWith("CNI-HOSTPORT-", StringComparison.Ordinal))).ToList();
        if (created.Count > 0)
        {
            // Jumps into the chains first (from PREROUTING, OUTPUT, POSTROUTING), then the chains.
            foreach (var line in Tool("iptables-save", "-t", "nat").Split('\n'))
            {
                var words = line.Split(' ');
                var jump = Array.IndexOf(words, "-j");
                if (words is ["-A", var chain, ..] && !created.Contains(chain) && jump > 0 && jump + 1 < words.Length && created.Contains(words[jump + 1]))
                    Tool(["iptables", "-t", "nat", "-D", chain, .. Arguments(line)[2..]]);
            }
            foreach (var chain in created)
                Tool("iptables", "-t", "nat", "-F", chain);
            foreach (var chain in created)
                Tool("iptables", "-t", "nat", "-X", chain);
        }
        File.WriteAllText("/proc/sys/net/ipv4/ip_forward", _ipForward);
        _hostNat.Dispose();
    }

    /// <summary>A rule of iptables-save as arguments: it double-quotes those with spaces (comments).</summary>
    private static string[] Arguments(string rule)
    {
        var args = new List<string>();
        var word = new StringBuilder();
        var quoted = false;
        foreach (var c in rule.Trim())
        {
            if (c == '"')
                quoted = !quoted;
            else if (c == ' ' && !quoted)
            {
                if (word.Length > 0)
                    args.Add(word.ToString());
                word.Clear();
            }
            else
                word.Append(c);
        }
        if (word.Length > 0)
            args.Add(word.ToString());
        return [.. args];
    }

    private static bool ChainIsEmpty(string chain) =>
        Tool("iptables", "-t", "nat", "-S", chain).Split('\n', StringSplitOptions.RemoveEmptyEntries).All(l => l.StartsWith("-N ", StringComparison.Ordinal));

    private static HashSet<string> NatChains() =>
        Tool("iptables-save", "-t", "nat").Split('\n').Where(l => l.StartsWith(':')).Select(l => l[1..].Split(' ')[0]).ToHashSet();

    /// <summary>Runs a host tool for the cleanup; its failure is not the run's (the thing may be gone already).</summary>
    private static string Tool(params string[] args)
    {
        var info = new ProcessStartInfo(args[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args[1..])
            info.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(info)!;
            var output = p.StandardOutput.ReadToEnd();
            p.StandardError.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 ? output : "";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "";
        }
    }
}
