using Grpc.Core;
using Google.Protobuf;
using Runtime.V1;

namespace Crid.Server.Services;

internal sealed partial class CriRuntimeService
{
    public override async Task<CreateContainerResponse> CreateContainer(CreateContainerRequest request, ServerCallContext context)
    {
        var container = await containers.CreateAsync(request, context.CancellationToken);
        return new CreateContainerResponse { ContainerId = container.Id };
    }

    public override async Task<StartContainerResponse> StartContainer(StartContainerRequest request, ServerCallContext context)
    {
        await containers.StartAsync(request.ContainerId, context.CancellationToken);
        return new StartContainerResponse();
    }

    public override async Task<StopContainerResponse> StopContainer(StopContainerRequest request, ServerCallContext context)
    {
        await containers.StopAsync(request.ContainerId, request.Timeout, context.CancellationToken);
        return new StopContainerResponse();
    }

    public override async Task<RemoveContainerResponse> RemoveContainer(RemoveContainerRequest request, ServerCallContext context)
    {
        var id = containers.Find(request.ContainerId)?.Id;
        await containers.RemoveAsync(request.ContainerId, context.CancellationToken);
        if (id is not null)
            stats.Forget(id);
        return new RemoveContainerResponse();
    }

    public override Task<ListContainersResponse> ListContainers(ListContainersRequest request, ServerCallContext context)
    {
        var response = new ListContainersResponse();
        foreach (var container in containers.List(request.Filter))
            response.Containers.Add(ContainerMapping.ToContainer(container));
        return Task.FromResult(response);
    }

    public override Task<ContainerStatusResponse> ContainerStatus(ContainerStatusRequest request, ServerCallContext context)
    {
        var container = containers.Get(request.ContainerId);
        var response = new ContainerStatusResponse { Status = ContainerMapping.ToStatus(container) };
        if (request.Verbose)
            response.Info["info"] = ContainerMapping.VerboseInfo(container);
        return Task.FromResult(response);
    }

    public override async Task<UpdateContainerResourcesResponse> UpdateContainerResources(UpdateContainerResourcesRequest request, ServerCallContext context)
    {
        await containers.UpdateResourcesAsync(request.ContainerId, request.Linux, context.CancellationToken);
        return new UpdateContainerResourcesResponse();
    }

    public override async Task<ReopenContainerLogResponse> ReopenContainerLog(ReopenContainerLogRequest request, ServerCallContext context)
    {
        await containers.ReopenLogAsync(request.ContainerId, context.CancellationToken);
        return new ReopenContainerLogResponse();
    }

    public override async Task<ExecSyncResponse> ExecSync(ExecSyncRequest request, ServerCallContext context)
    {
        var result = await containers.ExecSyncAsync(request.ContainerId, request.Cmd, request.Timeout, context.CancellationToken);
        return new ExecSyncResponse
        {
            ExitCode = result.ExitCode,
            Stdout = ByteString.CopyFrom(result.Stdout),
            Stderr = ByteString.CopyFrom(result.Stderr),
        };
    }
}
