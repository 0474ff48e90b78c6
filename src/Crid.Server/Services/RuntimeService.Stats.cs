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
        var answer = new PodSandboxStatsResponse { Stats = await stats.PodAsync(sandbox, ContainersOf(sandbox)) };
        ForgetRemoved(sandbox);
        return answer;
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
        var pods = sandboxes.List(filter).ToList();
        var answers = new PodSandboxStats[pods.Count];
        async Task Range(int from, int to)
        {
            for (var i = from; i < to; i++)
                answers[i] = await stats.PodAsync(pods[i], ContainersOf(pods[i])).ConfigureAwait(false);
        }
        // Two halves at once, as ListContainerStats reads its containers (StatsCollector.ContainersAsync):
        // the two cores share the kernel's formatting of the cgroup files and the network reads' waits.
        if (pods.Count < 8)
            await Range(0, pods.Count);
        else
            await Task.WhenAll(Task.Run(() => Range(pods.Count / 2, pods.Count)), Range(0, pods.Count / 2));
        foreach (var sandbox in pods)
            ForgetRemoved(sandbox);
        var response = new ListPodSandboxStatsResponse();
        response.Stats.AddRange(answers);
        return response;
    }

    public override async Task<ContainerStatsResponse> ContainerStats(ContainerStatsRequest request, ServerCallContext context)
    {
        var container = containers.Get(request.ContainerId);
        var answer = new ContainerStatsResponse { Stats = await stats.ContainerAsync(SourceOf(container)) };
        ForgetRemoved(container);
        return answer;
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
        var listed = containers.List(filter).ToList();
        var response = new ListContainerStatsResponse();
        response.Stats.AddRange(await stats.ContainersAsync([.. listed.Select(SourceOf)]));
        foreach (var c in listed)
            ForgetRemoved(c);
        return response;
    }

    /// <summary>
    /// What stats keep of a container removed while its figures were read (its cgroup's open files):
    /// Remove marks it removed before it calls Forget, so either that Forget or this one drops what
    /// the read kept.
    /// </summary>
    private void ForgetRemoved(Crid.Core.Containers.Container c)
    {
        if (c.Removed)
            stats.Forget(c.Id);
    }

    private void ForgetRemoved(Sandbox sandbox)
    {
        if (!sandbox.Removed)
            return;
        stats.Forget(sandbox.Id);
        foreach (var c in containers.OfSandbox(sandbox.Id))
            stats.Forget(c.Id);
    }

    /// <summary>The pod's containers as stats see them, created first.</summary>
    private IReadOnlyList<ContainerStatsSource> ContainersOf(Sandbox sandbox) =>
        [.. containers.OfSandbox(sandbox.Id).OrderBy(c => c.CreatedAt).Select(c => ContainerStatsSources.Of(c, sandbox, options.DefaultCgroupParent))];

    private ContainerStatsSource SourceOf(Crid.Core.Containers.Container c) =>
        ContainerStatsSources.Of(c, sandboxes.Find(c.SandboxId), options.DefaultCgroupParent);
}
