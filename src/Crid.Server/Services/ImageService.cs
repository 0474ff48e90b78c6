using Crid.Core.Configuration;
using Crid.Linux;
using Grpc.Core;
using Runtime.V1;

namespace Crid.Server.Services;

/// <summary>
/// CRI ImageService. crid has no image store yet: the lists are honestly empty, and the calls that
/// would change images say why they cannot. ImageFsInfo reports the real filesystem of the state dir,
/// because critest calls it before every test.
/// </summary>
internal sealed class CriImageService(CridOptions options) : ImageService.ImageServiceBase
{
    public override Task<ListImagesResponse> ListImages(ListImagesRequest request, ServerCallContext context) =>
        Task.FromResult(new ListImagesResponse());

    public override Task<ImageStatusResponse> ImageStatus(ImageStatusRequest request, ServerCallContext context) =>
        // The CRI contract: an image that is not present gives an empty image field, not an error.
        Task.FromResult(new ImageStatusResponse());

    public override Task<PullImageResponse> PullImage(PullImageRequest request, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented,
            "crid cannot pull images yet: it runs pod sandboxes only, and has no image store to pull into"));

    public override Task<RemoveImageResponse> RemoveImage(RemoveImageRequest request, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented,
            "crid cannot remove images yet: it has no image store, so there is nothing to remove"));

    public override Task<ImageFsInfoResponse> ImageFsInfo(ImageFsInfoRequest request, ServerCallContext context)
    {
        var usage = FileSystemUsage.Of(options.StateDir);
        var entry = new FilesystemUsage
        {
            Timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000,
            FsId = new FilesystemIdentifier { Mountpoint = usage.MountPoint },
            UsedBytes = new UInt64Value { Value = usage.UsedBytes },
            InodesUsed = new UInt64Value { Value = usage.UsedInodes },
        };
        return Task.FromResult(new ImageFsInfoResponse { ImageFilesystems = { entry }, ContainerFilesystems = { entry.Clone() } });
    }
}
