using System.Text.Json;
using Crid.Core.Configuration;
using Grpc.Core;
using Runtime.V1;

namespace Crid.Server.Services;

internal sealed partial class CriRuntimeService
{
    public override Task<StatusResponse> Status(StatusRequest request, ServerCallContext context)
    {
        var networkCondition = network.Condition();
        var response = new StatusResponse
        {
            Status = new RuntimeStatus { Conditions = { RuntimeCondition(), networkCondition } },
            RuntimeHandlers = { RuntimeHandlers() },
            Features = new RuntimeFeatures(),
        };
        if (request.Verbose)
        {
            // Keyed as the YAML file and the flags are, so what `crictl info` shows can be pasted back.
            response.Info["config"] = ConfigLoader.ToJson(options);
            response.Info["podCIDR"] = sandboxes.Network.PodCidr;
            // Names held by live sandboxes or by a Run in flight: a failed Run must release its name,
            // and this is where an operator (or a test) can see that it did.
            response.Info["reservedNames"] = JsonSerializer.Serialize(new Dictionary<string, string>(sandboxes.ReservedNames()), ServerJson.Default.DictionaryStringString);
            response.Info["cni"] = StatusInfo.Network(sandboxes.Network, new(networkCondition.Status, networkCondition.Reason, networkCondition.Message));
            response.Info["cgroups"] = StatusInfo.Cgroups(stats.Layout);
            response.Info["events"] = StatusInfo.Events(events);
            response.Info["reservedContainerNames"] = JsonSerializer.Serialize(new Dictionary<string, string>(containers.ReservedNames()), ServerJson.Default.DictionaryStringString);
        }
        return Task.FromResult(response);
    }

    /// <summary>
    /// The handlers RunPodSandbox accepts: the default (empty name) and the configured ones. Neither
    /// feature is claimed: recursive read-only mounts need runc 1.2 (Debian's is 1.1), and kubelet's
    /// user-namespaced pods need idmapped volume mounts, which crid does not make.
    /// </summary>
    private IEnumerable<RuntimeHandler> RuntimeHandlers() =>
        new[] { "" }.Concat(options.RuntimeHandlers).Select(name => new RuntimeHandler { Name = name, Features = new RuntimeHandlerFeatures() });

    /// <summary>
    /// kubelet sends the node's pod CIDR here once it knows it. CNI plugins take their ranges from their
    /// own config, so it is kept and shown (Status verbose info "podCIDR"), not pushed anywhere.
    /// </summary>
    public override Task<UpdateRuntimeConfigResponse> UpdateRuntimeConfig(UpdateRuntimeConfigRequest request, ServerCallContext context)
    {
        sandboxes.Network.SetPodCidr(request.RuntimeConfig?.NetworkConfig?.PodCidr ?? "");
        return Task.FromResult(new UpdateRuntimeConfigResponse());
    }

    /// <summary>
    /// RuntimeReady is true when the folders the daemon writes to are there and writable: that is all
    /// a sandbox needs from the host besides the kernel features checked at start-up.
    /// </summary>
    private RuntimeCondition RuntimeCondition()
    {
        foreach (var dir in new[] { options.StateDir, options.NamespacesDir })
        {
            if (!Directory.Exists(dir))
                return new RuntimeCondition { Type = "RuntimeReady", Status = false, Reason = "DirectoryMissing", Message = $"{dir} does not exist" };
        }
        // Without its monitor or its OCI runtime no container can run: kubelet must not send pods here.
        foreach (var binary in options.Handlers().Select(h => h.RuntimePath).Append(options.ConmonPath).Distinct())
        {
            if (!File.Exists(binary))
                return new RuntimeCondition { Type = "RuntimeReady", Status = false, Reason = "RuntimeMissing", Message = $"{binary} does not exist" };
        }
        return new RuntimeCondition
        {
            Type = "RuntimeReady",
            Status = true,
            Reason = "RuntimeIsReady",
            Message = $"crid {RuntimeInfo.ProductVersion} pins pod namespaces under {options.NamespacesDir} and runs containers with {options.RuntimePath}",
        };
    }
}
