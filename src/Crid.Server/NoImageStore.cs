using Crid.Core.Errors;
using Crid.Core.Images;

namespace Crid.Server;

/// <summary>
/// Until the image store is wired in: no image is present, so CreateContainer answers NotFound
/// for every image. Replaced by Crid.Images' store (its AddImages registers IContainerImages).
/// </summary>
internal sealed class NoImageStore : IContainerImages
{
    public ContainerImage? Find(string reference) => null;

    public IReadOnlyList<string> Retain(string containerId, string imageId) => throw new NotFoundException($"image {imageId} is not present");

    public void Release(string containerId)
    {
    }

    public void ReleaseAllExcept(IReadOnlySet<string> liveContainerIds)
    {
    }
}
