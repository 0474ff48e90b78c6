using System.Text.Json;
using Crid.Core.Errors;
using Crid.Core.Images;
using Crid.Images.Registry;

namespace Crid.Images.Store;

/// <summary>The container lifecycle's view of the store (<see cref="IContainerImages"/>).</summary>
public sealed partial class ImageStore : IContainerImages
{
    public ContainerImage? Find(string reference)
    {
        var image = Lookup(reference);
        return image is null ? null : ToContainerImage(image);
    }

    public ContainerImage ToContainerImage(StoredImage image) => new()
    {
        Id = image.Id,
        RepoTags = image.RepoTags,
        RepoDigests = image.RepoDigests,
        Config = ConfigOf(image)?.Runtime ?? new ImageRuntimeConfig(),
    };

    /// <summary>The image's parsed config, or null when its blob is unreadable (logged).</summary>
    public ImageConfig? ConfigOf(StoredImage image)
    {
        var bytes = ReadBlob(image.Id);
        if (bytes is null)
            return null;
        try
        {
            return ImageConfig.Parse(bytes);
        }
        catch (ManifestException)
        {
            return null;
        }
    }

    public IReadOnlyList<string> Retain(string containerId, string imageId)
    {
        CheckContainerId(containerId);
        IReadOnlyList<string>? layers = null;
        Mutate(index =>
        {
            var path = HoldPath(containerId);
            // An empty one (a host crash after a write without fsync) reads as none and is rewritten.
            if (ReadHold(path) is { } existing)
            {
                if (existing.Layers.All(c => index.Layers.Any(l => l.ChainId == c)))
                {
                    layers = existing.Layers;
                    return index;
                }
            }
            var id = imageId.StartsWith("sha256:", StringComparison.Ordinal) ? imageId : "sha256:" + imageId;
            var image = index.Images.FirstOrDefault(i => i.Id == id)
                ?? throw new NotFoundException($"image {imageId} is not present");
            // Atomic, not fsynced (it cost every CreateContainer two ext4 journal commits): a hold
            // matters while its container can run, and a host crash ends that. After one, a hold
            // lost or left empty (read as absent) can only let a collection take the layers of an
            // image already removed, under a container that died with the host: RemoveContainer
            // of it still works, and nothing can start it again (CRI never restarts a container).
            StoreFiles.WriteAtomic(path, JsonSerializer.SerializeToUtf8Bytes(new HoldRecord { ImageId = image.Id, Layers = image.Layers }, StoreJson.Default.HoldRecord), TmpDir, durable: false);
            layers = image.Layers;
            return index;
        });
        var byChain = Current.Layers.ToDictionary(l => l.ChainId);
        // overlayfs lowerdir order: the top-most layer first.
        return layers!.Reverse().Select(c => SnapshotPath(byChain[c].Snapshot)).ToArray();
    }

    public void Release(string containerId)
    {
        CheckContainerId(containerId);
        if (!File.Exists(HoldPath(containerId)))
            return;
        Mutate(index =>
        {
            var path = HoldPath(containerId);
            var held = ReadHold(path);
            File.Delete(path);
            // A collection reads every hold (one file per container): at 1,000 live containers that
            // was 1,000 files per RemoveContainer. It can only find something when this hold kept a
            // layer no image has; while the hold's image is in the index with all its layers (an id
            // is a config digest, so its layers never change), nothing became unused.
            _collectAfterMutate = held is null
                || index.Images.FirstOrDefault(i => i.Id == held.ImageId) is not { } image
                || held.Layers.Any(l => !image.Layers.Contains(l));
            return index;
        });
    }

    public void ReleaseAllExcept(IReadOnlySet<string> liveContainerIds)
    {
        Mutate(index =>
        {
            // By name: the container's id is the file's (reading each of 1,000 holds took a restart
            // 10 to 25 ms); an unreadable hold of a gone container goes too.
            foreach (var file in new DirectoryInfo(HoldsDir).EnumerateFiles("*.json"))
            {
                if (!liveContainerIds.Contains(Path.GetFileNameWithoutExtension(file.Name)))
                {
                    file.Delete();
                    _collectAfterMutate = true;
                }
            }
            return index;
        });
    }

    /// <summary>The containers that hold layers, and the image each was created from.</summary>
    public IReadOnlyDictionary<string, string> Holds() => ReadHolds().ToDictionary(h => h.ContainerId, h => h.Record.ImageId);

    private string HoldPath(string containerId) => Path.Combine(HoldsDir, containerId + ".json");

    private static void CheckContainerId(string containerId)
    {
        if (containerId.Length is 0 or > 128 || containerId[0] == '.'
            || !containerId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new InvalidArgumentException("container_id", $"\"{containerId}\" is not a container id");
    }
}
