using Crid.Core.Containers;
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

    public override async Task<ContainerStatsResponse> ContainerStats(ContainerStatsRequest request, ServerCallContext context)
    {
        var container = containers.Get(request.ContainerId);
        return new ContainerStatsResponse { Stats = await stats.ContainerAsync(SourceOf(container)) };
    }

    /// <summary>
    /// Every container matching the filter (id prefix, pod id prefix, every label), as containerd
    /// lists them: one that does not run has its identity and writable layer, no CPU or memory.
    /// </summary>
    public override async Task<ListContainerStatsResponse> ListContainerStats(ListContainerStatsRequest request, ServerCallContext context)
    {
        var filter = new ContainerFilter
        {
            Id = request.Filter?.Id ?? "",
            PodSandboxId = request.Filter?.PodSandboxId ?? "",
        };
        if (request.Filter is { } f)
            filter.LabelSelector.Add(f.LabelSelector);
        var response = new ListContainerStatsResponse();
        // All asked for before any is awaited: the writable-layer walks they need queue up and run
        // back to back on the walker thread (WritableLayerStats), instead of one wake-up each.
        var each = containers.List(filter).Select(c => stats.ContainerAsync(SourceOf(c))).ToList();
        foreach (var task in each)
            response.Stats.Add(await task);
        return response;
    }

    /// <summary>The pod's containers as stats see them, created first.</summary>
    private IReadOnlyList<ContainerStatsSource> ContainersOf(Sandbox sandbox) =>
        [.. containers.OfSandbox(sandbox.Id).OrderBy(c => c.CreatedAt).Select(c => ContainerStatsSources.Of(c, sandbox, options.DefaultCgroupParent))];

    private ContainerStatsSource SourceOf(Crid.Core.Containers.Container c) =>
        ContainerStatsSources.Of(c, sandboxes.Find(c.SandboxId), options.DefaultCgroupParent);
}
