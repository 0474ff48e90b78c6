using Crid.Core.Events;
using Grpc.Core;
using Runtime.V1;

namespace Crid.Server.Services;

internal sealed partial class CriRuntimeService
{
    /// <summary>
    /// GetContainerEvents: every container and sandbox transition from the moment of the call, as
    /// long as the client reads. A client that falls too far behind is cut off with
    /// RESOURCE_EXHAUSTED after the events queued for it (see <see cref="ContainerEventBus"/>): it
    /// knows it missed some and relists, as kubelet's evented PLEG does when its stream breaks.
    /// </summary>
    public override async Task GetContainerEvents(GetEventsRequest request, IServerStreamWriter<ContainerEventResponse> responseStream, ServerCallContext context)
    {
        using var subscription = events.Subscribe();
        try
        {
            await foreach (var e in subscription.ReadAllAsync(context.CancellationToken))
                await responseStream.WriteAsync(e, context.CancellationToken);
        }
        catch (EventSubscriberOverflowException overflow)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, overflow.Message));
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // The client left: the stream's normal end.
        }
    }
}
