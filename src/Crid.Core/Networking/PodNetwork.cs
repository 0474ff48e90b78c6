using System.Net;
using System.Text.Json.Nodes;
using Crid.Core.Configuration;
using Crid.Core.Errors;
using Microsoft.Extensions.Logging;
using Runtime.V1;

namespace Crid.Core.Networking;

/// <summary>Whether pods can be put on a network, as Status reports NetworkReady.</summary>
public sealed record NetworkReadiness(bool Ready, string Reason, string Message);

/// <summary>
/// Pod networking through CNI: attaches a sandbox's pinned network namespace to the pod network
/// (ADD), detaches it (DEL), and says whether there is a network at all. SandboxManager calls it; the
/// plugins and the config folder are all it knows of the host.
/// </summary>
public sealed class PodNetwork
{
    /// <summary>The pod's interface: kubelet and every CNI plugin expect eth0.</summary>
    public const string InterfaceName = "eth0";

    private readonly CridOptions _options;
    private readonly ILogger _log;
    private readonly CniConfigDir _configDir;
    private volatile string _podCidr = "";

    // The network configs (by their text) that have had a successful ADD since the daemon started, and
    // the gate every ADD on any other config passes alone. Plugins set up shared host state on their
    // first ADD and not all of them do it safely at once: Debian's portmap 1.1.1 on iptables-nft
    // fails one of several concurrent first ADDs with "CHAIN_USER_ADD failed (File exists)" or "No
    // chain/target/match" while each creates the CNI-HOSTPORT-* chains (measured: 2 of 160 ADDs in
    // ten bursts of 16 on a host without the chains). kubelet would retry the pod after a back-off;
    // one ADD at a time until one has succeeded costs only the first pods of a burst their wait.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _warmNetworks = new();
    private readonly SemaphoreSlim _firstAdd = new(1, 1);

    public PodNetwork(CridOptions options, ILogger<PodNetwork> log)
    {
        _options = options;
        _log = log;
        _configDir = new CniConfigDir(options.CniConfDir, options.CniBinDirs, log);
    }

    private TimeSpan Timeout => TimeSpan.FromSeconds(_options.CniTimeoutSeconds);

    /// <summary>The pod network configured right now, if any.</summary>
    internal CniNetwork? Current() => _configDir.Current().Network;

    public NetworkReadiness Readiness()
    {
        var state = _configDir.Current();
        return state.Network is { } n
            ? new NetworkReadiness(true, "NetworkReady", $"pod network \"{n.Name}\" (CNI {n.CniVersion}) from {n.File}")
            : new NetworkReadiness(false, "NetworkPluginNotReady", $"{state.Problem}: pods get a loopback device only");
    }

    /// <summary>The pod CIDR kubelet last sent through UpdateRuntimeConfig; empty when none.</summary>
    public string PodCidr => _podCidr;

    /// <summary>
    /// UpdateRuntimeConfig's pod_cidr. kubelet sends the node's podCIDRs comma-separated (one per IP
    /// family); an empty value clears it.
    /// </summary>
    public void SetPodCidr(string cidr)
    {
        var parts = cidr.Split(',', StringSplitOptions.TrimEntries);
        if (cidr.Length > 0)
        {
            foreach (var part in parts)
            {
                // .NET masks host bits away silently; a node's podCIDR never has any, so one that does is a typo.
                if (!part.Contains('/') || !IPNetwork.TryParse(part, out var network) || !network.BaseAddress.Equals(IPAddress.Parse(part[..part.IndexOf('/')])))
                    throw new InvalidArgumentException("runtime_config.network_config.pod_cidr", $"\"{part}\" is not a CIDR (address/prefix length with no host bits)");
            }
        }
        var value = string.Join(',', parts.Where(p => p.Length > 0));
        if (value != _podCidr)
            NetworkLog.PodCidrSet(_log, value);
        _podCidr = value;
    }

    /// <summary>
    /// What an ADD of sandbox <paramref name="id"/> on <paramref name="network"/> in the namespace pinned
    /// at <paramref name="netns"/> will run with; the caller writes it down before the ADD, so that a
    /// crash before the sandbox's record exists still leaves what the DEL needs (<see cref="ReleaseAsync"/>).
    /// </summary>
    internal static NetworkIntent Intend(string id, PodSandboxConfig config, string netns, CniNetwork network) => new()
    {
        NetworkName = network.Name,
        ConfigJson = network.Json,
        NetNs = netns,
        CniArgs = CniArgs(id, config),
        PortMappingsJson = PortMappings(config) is { Count: > 0 } ports ? ports.ToJsonString() : "",
    };

    /// <summary>
    /// CNI ADD of every plugin of <paramref name="network"/>, in order, with the arguments
    /// <paramref name="intent"/> recorded (see <see cref="Intend"/>). On failure everything the plugins
    /// did is undone by a best-effort DEL, and the plugin's own message is thrown. Until an ADD on this
    /// network config has succeeded, ADDs run one at a time (see <c>_warmNetworks</c>).
    /// </summary>
    internal async Task<NetworkAttachment> AttachAsync(string id, NetworkIntent intent, CniNetwork network, CancellationToken cancel)
    {
        if (_warmNetworks.ContainsKey(network.Json))
            return await AddAsync(id, intent, network, cancel).ConfigureAwait(false);
        await _firstAdd.WaitAsync(cancel).ConfigureAwait(false);
        if (_warmNetworks.ContainsKey(network.Json))
        {
            // The ADD this one waited behind succeeded: the rest of the burst goes at once.
            _firstAdd.Release();
            return await AddAsync(id, intent, network, cancel).ConfigureAwait(false);
        }
        try
        {
            var attachment = await AddAsync(id, intent, network, cancel).ConfigureAwait(false);
            _warmNetworks.TryAdd(network.Json, 0);
            return attachment;
        }
        finally
        {
            _firstAdd.Release();
        }
    }

    private async Task<NetworkAttachment> AddAsync(string id, NetworkIntent intent, CniNetwork network, CancellationToken cancel)
    {
        var netns = intent.NetNs;
        var ports = ParsePorts(intent.PortMappingsJson);
        var call = new CniPlugin.Call("ADD", id, netns, InterfaceName, intent.CniArgs);
        JsonObject? result = null;
        try
        {
            foreach (var plugin in network.Plugins)
            {
                var conf = PluginConfig(network, plugin, ports, result);
                result = await CniPlugin.InvokeAsync(_options.CniBinDirs, conf, call, Timeout, _log, cancel).ConfigureAwait(false)
                    ?? throw new CniPluginException($"plugin \"{CniNetwork.TypeOf(plugin)}\" ADD printed no result");
            }
        }
        catch (Exception e) when (e is CniPluginException or OperationCanceledException)
        {
            // CNI spec, "ADD": a runtime that gets an error should DEL to let the plugins clean up.
            // The undo runs to its end whatever the caller does: it is what leaves nothing behind.
            try { await DelAsync(id, intent.CniArgs, ports, netns, network, result, everyPlugin: true, CancellationToken.None).ConfigureAwait(false); }
            catch (CniPluginException del) { NetworkLog.RollbackDelFailed(_log, id, network.Name, del.Message); }
            if (e is OperationCanceledException)
                throw;
            throw new RuntimeFailureException($"CNI ADD on network \"{network.Name}\" failed: {e.Message}", e);
        }
        var ips = CniResult.Ips(result, InterfaceName);
        NetworkLog.Attached(_log, id, network.Name, string.Join(", ", ips));
        return new NetworkAttachment
        {
            NetworkName = network.Name,
            ConfigFile = network.File,
            ConfigJson = network.Json,
            ResultJson = result?.ToJsonString() ?? "",
            Ips = ips,
        };
    }

    /// <summary>
    /// CNI DEL with the network and result ADD left behind; returns the attachment marked detached,
    /// which the caller puts in the sandbox's status.
    /// </summary>
    /// <param name="rollback">a failed Run's undo: no retry will follow, so every plugin gets its DEL.</param>
    /// <exception cref="RuntimeFailureException">a plugin failed; the attachment stays attached.</exception>
    internal async Task<NetworkAttachment> DetachAsync(string id, PodSandboxConfig config, string netns, NetworkAttachment attachment, CancellationToken cancel, bool rollback = false)
    {
        if (!attachment.Attached)
            return attachment;
        var result = attachment.ResultJson.Length > 0 ? JsonNode.Parse(attachment.ResultJson) as JsonObject : null;
        try
        {
            await DelAsync(id, CniArgs(id, config), PortMappings(config), netns, CniNetwork.FromJson(attachment.ConfigJson), result, everyPlugin: rollback, cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CniPluginException or FormatException)
        {
            throw new RuntimeFailureException($"CNI DEL on network \"{attachment.NetworkName}\" failed: {e.Message}", e);
        }
        NetworkLog.Detached(_log, id, attachment.NetworkName);
        return attachment with { Attached = false };
    }

    /// <summary>
    /// CNI DEL from what was written down before an ADD whose outcome the daemon never recorded (it
    /// died before the sandbox's record was written, or the ADD itself was cut short). There is no ADD
    /// result to pass as prevResult, and the plugins do not need one to let go: host-local frees by
    /// container id, bridge deletes the pod's interface (nothing when the netns is gone), portmap
    /// drops the chains named after the container id. Every plugin gets its DEL, as in a rollback.
    /// </summary>
    /// <exception cref="RuntimeFailureException">a plugin failed or the recorded list no longer parses.</exception>
    internal async Task ReleaseAsync(string id, NetworkIntent intent, CancellationToken cancel)
    {
        try
        {
            await DelAsync(id, intent.CniArgs, ParsePorts(intent.PortMappingsJson), intent.NetNs, CniNetwork.FromJson(intent.ConfigJson), null, everyPlugin: true, cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CniPluginException or FormatException or System.Text.Json.JsonException)
        {
            throw new RuntimeFailureException($"CNI DEL on network \"{intent.NetworkName}\" failed: {e.Message}", e);
        }
    }

    private static JsonArray? ParsePorts(string json) =>
        json.Length == 0 ? null : JsonNode.Parse(json) as JsonArray ?? throw new FormatException("portMappings is not a JSON array");

    /// <summary>
    /// DEL runs the plugins in reverse order, each with ADD's final result as prevResult (CNI spec,
    /// "Network configuration list runtime examples"), and stops at the first failure ("Network
    /// Configuration List Error Handling": the runtime "MUST stop execution of the list"); Stop's DEL
    /// is then owed and retried whole. The rollback of a failed ADD has no later retry: the sandbox never
    /// existed. There the spec asks for DEL "for all plugins in the list", so with
    /// <paramref name="everyPlugin"/> each one gets its DEL even after one failed (a missing or broken
    /// plugin must not keep bridge from giving the address back), and the first failure is thrown after.
    /// </summary>
    private async Task DelAsync(string id, string cniArgs, JsonArray? ports, string netns, CniNetwork network, JsonObject? result, bool everyPlugin, CancellationToken cancel)
    {
        var call = new CniPlugin.Call("DEL", id, netns, InterfaceName, cniArgs);
        CniPluginException? first = null;
        for (var i = network.Plugins.Count - 1; i >= 0; i--)
        {
            try
            {
                await CniPlugin.InvokeAsync(_options.CniBinDirs, PluginConfig(network, network.Plugins[i], ports, result), call, Timeout, _log, cancel).ConfigureAwait(false);
            }
            catch (CniPluginException e) when (everyPlugin)
            {
                first ??= e;
            }
        }
        if (first is not null)
            throw first;
    }

    /// <summary>
    /// What one plugin reads on stdin (CNI spec, "Execution of Network Configurations"): its own config
    /// with the list's cniVersion and name, the previous result, and the runtimeConfig for the
    /// capabilities it declared.
    /// </summary>
    private static JsonObject PluginConfig(CniNetwork network, JsonObject plugin, JsonArray? ports, JsonObject? prevResult)
    {
        var conf = (JsonObject)plugin.DeepClone();
        conf["cniVersion"] = network.CniVersion;
        conf["name"] = network.Name;
        if (prevResult is not null)
            conf["prevResult"] = prevResult.DeepClone();
        else
            conf.Remove("prevResult");
        var runtimeConfig = new JsonObject();
        if (CniNetwork.HasCapability(plugin, "portMappings") && ports is { Count: > 0 })
            runtimeConfig["portMappings"] = ports.DeepClone();
        if (runtimeConfig.Count > 0)
            conf["runtimeConfig"] = runtimeConfig;
        return conf;
    }

    /// <summary>The portMappings capability (CNI CONVENTIONS.md): hostPort, containerPort, protocol, hostIP.</summary>
    private static JsonArray PortMappings(PodSandboxConfig config)
    {
        var list = new JsonArray();
        foreach (var m in config.PortMappings)
        {
            // A mapping without a host port only documents the container port (kubelet sends those too).
            if (m.HostPort <= 0)
                continue;
            var entry = new JsonObject
            {
                ["hostPort"] = m.HostPort,
                ["containerPort"] = m.ContainerPort,
                ["protocol"] = m.Protocol switch { Protocol.Udp => "udp", Protocol.Sctp => "sctp", _ => "tcp" },
            };
            if (m.HostIp.Length > 0)
                entry["hostIP"] = m.HostIp;
            list.Add((JsonNode)entry);
        }
        return list;
    }

    /// <summary>
    /// CNI_ARGS as kubelet's dockershim and every CRI runtime pass them; IgnoreUnknown=1 keeps plugins
    /// that know none of the K8S_ keys from refusing them (CNI CONVENTIONS.md, "CNI_ARGS").
    /// </summary>
    private static string CniArgs(string id, PodSandboxConfig config) =>
        $"IgnoreUnknown=1;K8S_POD_NAMESPACE={config.Metadata.Namespace};K8S_POD_NAME={config.Metadata.Name};" +
        $"K8S_POD_INFRA_CONTAINER_ID={id};K8S_POD_UID={config.Metadata.Uid}";
}
