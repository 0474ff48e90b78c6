namespace Crid.Core.Images;

/// <summary>
/// What the container lifecycle needs of the image store, and nothing more: find a present image,
/// and hold its layers for as long as a container is built on them. Crid.Images implements it;
/// Core never sees registries, blobs or tar streams, and its tests can use a folder of layers.
/// </summary>
/// <remarks>
/// A hold is how containerd keeps an image's snapshots alive under a container after RemoveImage:
/// the image's name and record go at once, its layers only when no image and no container holds
/// them. Holds are durable, so a daemon restarted after a crash neither loses a running
/// container's layers nor keeps the layers of a container that is gone for ever.
/// </remarks>
public interface IContainerImages
{
    /// <summary>
    /// The present image that <paramref name="reference"/> names, as CreateContainer's
    /// <c>image.image</c> gives it: a tag or digest reference (normalised as PullImage normalises
    /// it, so <c>busybox</c> is <c>docker.io/library/busybox:latest</c>), an image id
    /// (<c>sha256:&lt;hex&gt;</c> or the bare hex) or a unique prefix of one. Null when no such
    /// image is present.
    /// </summary>
    /// <exception cref="Errors.InvalidArgumentException">the reference is malformed.</exception>
    ContainerImage? Find(string reference);

    /// <summary>
    /// Records durably that container <paramref name="containerId"/> is built on image
    /// <paramref name="imageId"/>, so that neither RemoveImage nor a collection removes its layers
    /// until <see cref="Release"/>. Idempotent: a second call for the same container returns the
    /// same folders. Returns the image's unpacked layer folders in overlayfs <c>lowerdir</c> order,
    /// top-most layer first; each is a plain directory that stays unchanged while it is held.
    /// </summary>
    /// <exception cref="Errors.NotFoundException">no image with that id is present.</exception>
    IReadOnlyList<string> Retain(string containerId, string imageId);

    /// <summary>Drops the container's hold. Idempotent: an unknown container is not an error.</summary>
    void Release(string containerId);

    /// <summary>
    /// At start-up, once every container record has been read: drops the holds of containers that
    /// no longer exist (a removal cut short by a crash), so their layers can be collected.
    /// </summary>
    void ReleaseAllExcept(IReadOnlySet<string> liveContainerIds);
}

/// <summary>A present image, as a container needs it.</summary>
public sealed record ContainerImage
{
    /// <summary><c>sha256:&lt;hex&gt;</c>, the digest of the image's config: the CRI image id.</summary>
    public required string Id { get; init; }

    /// <summary>Normalised <c>name:tag</c> references that point at this image.</summary>
    public required IReadOnlyList<string> RepoTags { get; init; }

    /// <summary>Normalised <c>name@sha256:&lt;manifest digest&gt;</c> references of this image.</summary>
    public required IReadOnlyList<string> RepoDigests { get; init; }

    /// <summary>The parts of the image config that shape a container's process.</summary>
    public required ImageRuntimeConfig Config { get; init; }
}

/// <summary>
/// The OCI image config's <c>config</c> object, as far as a runtime uses it (image-spec config.md):
/// every field as the image gives it, empty when the image leaves it out.
/// </summary>
public sealed record ImageRuntimeConfig
{
    /// <summary><c>User</c>: "", "name", "uid", "name:group", "uid:gid" and so on, resolved against the image's /etc/passwd and /etc/group.</summary>
    public string User { get; init; } = "";

    /// <summary><c>Env</c>: KEY=value entries.</summary>
    public IReadOnlyList<string> Env { get; init; } = [];

    public IReadOnlyList<string> Entrypoint { get; init; } = [];

    public IReadOnlyList<string> Cmd { get; init; } = [];

    public string WorkingDir { get; init; } = "";

    /// <summary><c>StopSignal</c>: a name such as "SIGQUIT", a number, or empty for SIGTERM.</summary>
    public string StopSignal { get; init; } = "";

    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>The keys of <c>Volumes</c>: paths inside the container.</summary>
    public IReadOnlyList<string> Volumes { get; init; } = [];
}
