using Crid.Streaming;
using Grpc.Core;
using Runtime.V1;

namespace Crid.Server.Services;

/// <summary>
/// Exec, Attach and PortForward only hand out a single-use URL of the streaming server; the work
/// happens when the client connects there (api.proto: "Exec prepares a streaming endpoint").
/// </summary>
internal sealed partial class CriRuntimeService
{
    public override Task<ExecResponse> Exec(ExecRequest request, ServerCallContext context)
    {
        var exec = StreamingRequestValidator.Exec(request);
        exec = exec with { ContainerId = streaming.Containers.CheckRunning(exec.ContainerId) };
        return Task.FromResult(new ExecResponse { Url = streaming.UrlFor(exec) });
    }

    public override Task<AttachResponse> Attach(AttachRequest request, ServerCallContext context)
    {
        var attach = StreamingRequestValidator.Attach(request);
        attach = attach with { ContainerId = streaming.Containers.CheckRunning(attach.ContainerId) };
        return Task.FromResult(new AttachResponse { Url = streaming.UrlFor(attach) });
    }

    public override Task<PortForwardResponse> PortForward(PortForwardRequest request, ServerCallContext context)
    {
        StreamingRequestValidator.PortForward(request);
        // The pod must be there and ready now; the ports are the client's to name per connection.
        var (sandboxId, _) = streaming.Networks.Find(request.PodSandboxId);
        return Task.FromResult(new PortForwardResponse { Url = streaming.UrlFor(new PortForwardStreamRequest(sandboxId)) });
    }
}
