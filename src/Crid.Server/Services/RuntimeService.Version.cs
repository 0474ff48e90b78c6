using Grpc.Core;
using Runtime.V1;

namespace Crid.Server.Services;

internal sealed partial class CriRuntimeService
{
    public override Task<VersionResponse> Version(VersionRequest request, ServerCallContext context) =>
        Task.FromResult(new VersionResponse
        {
            Version = RuntimeInfo.KubeletApiVersion,
            RuntimeName = RuntimeInfo.Name,
            RuntimeVersion = RuntimeInfo.ProductVersion,
            RuntimeApiVersion = RuntimeInfo.ApiVersion,
        });
}
