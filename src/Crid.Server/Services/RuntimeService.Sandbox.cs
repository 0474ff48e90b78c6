using Crid.Core.Errors;
using Crid.Core.Sandboxes;
using Grpc.Core;
using Runtime.V1;

namespace Crid.Server.Services;

internal sealed partial class CriRuntimeService
{
    public override async Task<RunPodSandboxResponse> RunPodSandbox(RunPodSandboxRequest request, ServerCallContext context)
    {
        var sandbox = await sandboxes.RunAsync(request, context.CancellationToken);
        return new RunPodSandboxResponse { PodSandboxId = sandbox.Id };
    }

    public override async Task<StopPodSandboxResponse> StopPodSandbox(StopPodSandboxRequest request, ServerCallContext context)
    {
        await sandboxes.StopAsync(request.PodSandboxId, context.CancellationToken);
        return new StopPodSandboxResponse();
    }

    public override async Task<RemovePodSandboxResponse> RemovePodSandbox(RemovePodSandboxRequest request, ServerCallContext context)
    {
        // The stats baselines of the pod and its containers go with them.
        var sandbox = sandboxes.Find(request.PodSandboxId);
        var ids = sandbox is null ? [] : containers.OfSandbox(sandbox.Id).Select(c => c.Id).Append(sandbox.Id).ToList();
        await sandboxes.RemoveAsync(request.PodSandboxId, context.CancellationToken);
        foreach (var id in ids)
            stats.Forget(id);
        return new RemovePodSandboxResponse();
    }

    public override Task<PodSandboxStatusResponse> PodSandboxStatus(PodSandboxStatusRequest request, ServerCallContext context)
    {
        var sandbox = sandboxes.Get(request.PodSandboxId);
        var response = new PodSandboxStatusResponse { Status = SandboxMapping.ToStatus(sandbox) };
        if (request.Verbose)
            response.Info["info"] = SandboxMapping.VerboseInfo(sandbox);
        return Task.FromResult(response);
    }

    public override Task<ListPodSandboxResponse> ListPodSandbox(ListPodSandboxRequest request, ServerCallContext context)
    {
        var response = new ListPodSandboxResponse();
        foreach (var sandbox in sandboxes.List(request.Filter))
            response.Items.Add(SandboxMapping.ToPodSandbox(sandbox));
        return Task.FromResult(response);
    }
}
