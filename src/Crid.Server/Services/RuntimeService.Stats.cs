using Crid.Core.Sandboxes;
using Crid.Core.Stats;
using Grpc.Core;
using Runtime.V1;

namespace Crid.Server.Services;

internal sealed partial class CriRuntimeService
{
    public override async Task<PodSandboxStatsResponse> PodSandboxStats(PodSandboxStatsRequest request, ServerCallContext context)
    {
        var sandbox = sandboxes.Get(request.PodSandboxId);
        return new PodSandboxStatsResponse { Stats = await stats.PodAsync(sandbox, ContainersOf(sandbox)) };
    }

    /// <summary>
    /// The ready pods matching the filter (id prefix, every label), as containerd lists them: a pod
    /// that is not ready has no processes or network left to measure, and kubelet asks for running pods.
    /// </summary>
    public override async Task<ListPodSandboxStatsResponse> ListPodSandboxStats(ListPodSandboxStatsRequest request, ServerCallContext context)
    {
        var filter = new PodSandboxFilter
        {
            Id = request.Filter?.Id ?? "",
            State = new PodSandboxStateValue { State = PodSandboxState.SandboxReady },
        };
        if (request.Filter is { } f)
            filter.LabelSelector.Add(f.LabelSelector);
        var response = new ListPodSandboxStatsResponse();
        foreach (var sandbox in sandboxes.List(filter))
            response.Stats.Add(await stats.PodAsync(sandbox, ContainersOf(sandbox)));
        return response;
    }

    /// <summary>The pod's containers as stats see them; a pod has none until containers run on crid.</summary>
    private static IReadOnlyList<ContainerStatsSource> ContainersOf(Sandbox sandbox) => [];
}
