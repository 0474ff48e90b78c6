using System.Text.Json.Serialization;

namespace Crid.Images.Store;

/// <summary>
/// An unpacked layer: a folder <c>snapshots/&lt;Snapshot&gt;</c> keyed by its chain id (image-spec
/// config.md, "Layer ChainID"), shared by every image whose layers up to this one are the same.
/// A short number names the folder (containerd's overlay snapshotter does the same) so that an
/// overlay lowerdir of many layers stays well inside a page.
/// </summary>
public sealed record StoredLayer
{
    public required string ChainId { get; init; }
    public required string DiffId { get; init; }
    public required int Snapshot { get; init; }
    /// <summary>Bytes of regular files and entries the layer unpacked to.</summary>
    public long Bytes { get; init; }
    public long Inodes { get; init; }
}

/// <summary>A present image: its id (the config's digest), its layers and the names that point at it.</summary>
public sealed record StoredImage
{
    /// <summary><c>sha256:&lt;config digest&gt;</c>.</summary>
    public required string Id { get; init; }

    /// <summary>The image manifest chosen for this platform.</summary>
    public required string ManifestDigest { get; init; }

    /// <summary>Chain ids, bottom layer first.</summary>
    public required IReadOnlyList<string> Layers { get; init; }

    /// <summary>Compressed size: config, manifest and layer blobs, as the registry served them.</summary>
    public long Size { get; init; }

    public IReadOnlyList<string> RepoTags { get; init; } = [];

    public IReadOnlyList<string> RepoDigests { get; init; } = [];

    /// <summary>The blobs kept for it (index, manifest, config); never the layers, which live unpacked.</summary>
    public IReadOnlyList<string> Blobs { get; init; } = [];

    public DateTimeOffset Created { get; init; }
}

/// <summary>The store's single commit point: <c>images/index.json</c>, rewritten atomically on every change.</summary>
public sealed record StoreIndex
{
    public IReadOnlyList<StoredImage> Images { get; init; } = [];
    public IReadOnlyList<StoredLayer> Layers { get; init; } = [];
}

/// <summary>A container's durable hold on layers: <c>holds/&lt;container id&gt;.json</c>.</summary>
public sealed record HoldRecord
{
    public required string ImageId { get; init; }
    public required IReadOnlyList<string> Layers { get; init; }
}

[JsonSourceGenerationOptions(WriteIndented = false, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(StoreIndex))]
[JsonSerializable(typeof(HoldRecord))]
internal sealed partial class StoreJson : JsonSerializerContext;
