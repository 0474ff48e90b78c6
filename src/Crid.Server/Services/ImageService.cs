using System.Text;
using System.Text.Json;
using Crid.Core.Configuration;
using Crid.Core.Errors;
using Crid.Images.Pull;
using Crid.Images.References;
using Crid.Images.Registry;
using Crid.Images.Store;
using Crid.Linux;
using Grpc.Core;
using Runtime.V1;

namespace Crid.Server.Services;

/// <summary>
/// CRI ImageService: thin over the image store (Crid.Images). Lookups take what kubelet and crictl
/// send: an id, a prefix of one, or a tag or digest reference, normalised as docker does.
/// </summary>
internal sealed class CriImageService(CridOptions options, ImageStore store, ImagePuller puller,
    Crid.Core.Containers.ContainerManager containers, Crid.Core.Sandboxes.SandboxManager sandboxes, Crid.Core.Stats.StatsCollector stats)
    : ImageService.ImageServiceBase
{
    public override Task<ListImagesResponse> ListImages(ListImagesRequest request, ServerCallContext context)
    {
        var response = new ListImagesResponse();
        if (request.Filter?.Image?.Image is { Length: > 0 } wanted)
        {
            if (store.Lookup(wanted, "filter.image.image") is { } one)
                response.Images.Add(ToProto(one));
            return Task.FromResult(response);
        }
        response.Images.AddRange(store.Current.Images.Select(ToProto));
        return Task.FromResult(response);
    }

    public override Task<ImageStatusResponse> ImageStatus(ImageStatusRequest request, ServerCallContext context)
    {
        var text = Required(request.Image?.Image, "image.image");
        // The CRI contract: an image that is not present gives an empty image field, not an error.
        var image = store.Lookup(text);
        var response = new ImageStatusResponse();
        if (image is null)
            return Task.FromResult(response);
        response.Image = ToProto(image);
        if (request.Verbose)
            response.Info.Add("info", VerboseInfo(image));
        return Task.FromResult(response);
    }

    public override async Task<PullImageResponse> PullImage(PullImageRequest request, ServerCallContext context)
    {
        var text = Required(request.Image?.Image, "image.image");
        var reference = ImageReference.Parse(text);
        var id = await puller.PullAsync(reference, CredentialsOf(request.Auth), context.CancellationToken).ConfigureAwait(false);
        return new PullImageResponse { ImageRef = id };
    }

    public override Task<RemoveImageResponse> RemoveImage(RemoveImageRequest request, ServerCallContext context)
    {
        var text = Required(request.Image?.Image, "image.image");
        // CRI: "This call is idempotent, and must not return an error if the image has already been removed."
        if (store.Lookup(text) is { } image)
            store.Remove(image.Id);
        return Task.FromResult(new RemoveImageResponse());
    }

    public override async Task<ImageFsInfoResponse> ImageFsInfo(ImageFsInfoRequest request, ServerCallContext context)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        var (bytes, inodes) = store.Usage();
        var images = new FilesystemUsage
        {
            Timestamp = now,
            FsId = new FilesystemIdentifier { Mountpoint = FileSystemUsage.Of(store.Root).MountPoint },
            UsedBytes = new UInt64Value { Value = bytes },
            InodesUsed = new UInt64Value { Value = inodes },
        };
        // The containers' writable layers, on the filesystem of the containers' folder.
        var layers = await stats.WritableLayersAsync(containers.List(null).Select(c =>
            Crid.Core.Stats.ContainerStatsSources.Of(c, sandboxes.Find(c.SandboxId), options.DefaultCgroupParent)), containers.ContainersDir);
        return new ImageFsInfoResponse { ImageFilesystems = { images }, ContainerFilesystems = { layers } };
    }

    private Image ToProto(StoredImage image)
    {
        var result = new Image
        {
            Id = image.Id,
            RepoTags = { image.RepoTags },
            RepoDigests = { image.RepoDigests },
            Size = (ulong)image.Size,
            // The same answer whatever name the image was asked by: critest compares them whole.
            Spec = new ImageSpec { Image = image.Id },
        };
        var user = store.ConfigOf(image)?.Runtime.User ?? "";
        // kubelet's reading of the config's User (kuberuntime getUserFromImageUser): the part before
        // ':' is a uid when numeric, else a user name; the group never counts.
        var name = user.Split(':')[0];
        if (name.Length > 0)
        {
            if (long.TryParse(name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var uid))
                result.Uid = new Int64Value { Value = uid };
            else
                result.Username = name;
        }
        return result;
    }

    private string VerboseInfo(StoredImage image)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("imageId", image.Id);
            w.WriteString("manifestDigest", image.ManifestDigest);
            w.WriteStartArray("chainIds");
            foreach (var c in image.Layers)
                w.WriteStringValue(c);
            w.WriteEndArray();
            w.WriteStartArray("layerFolders");
            var layers = store.Current.Layers.ToDictionary(l => l.ChainId);
            foreach (var c in image.Layers)
            {
                if (layers.TryGetValue(c, out var l))
                    w.WriteStringValue(store.SnapshotPath(l.Snapshot));
            }
            w.WriteEndArray();
            if (store.ReadBlob(image.Id) is { } config)
            {
                w.WritePropertyName("imageSpec");
                try
                {
                    using var doc = JsonDocument.Parse(config);
                    doc.RootElement.WriteTo(w);
                }
                catch (JsonException)
                {
                    w.WriteStringValue(Encoding.UTF8.GetString(config));
                }
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static Credentials? CredentialsOf(AuthConfig? auth)
    {
        if (auth is null)
            return null;
        var creds = new Credentials(auth.Username, auth.Password, auth.IdentityToken, auth.RegistryToken);
        if (creds.Username.Length == 0 && auth.Auth.Length > 0)
        {
            creds = (Credentials.FromAuth(auth.Auth) ?? throw new InvalidArgumentException("auth.auth", "is not base64 of \"user:password\""))
                with { IdentityToken = auth.IdentityToken, RegistryToken = auth.RegistryToken };
        }
        return creds.Username.Length + creds.IdentityToken.Length + creds.RegistryToken.Length == 0 ? null : creds;
    }

    private static string Required(string? value, string field) =>
        string.IsNullOrEmpty(value) ? throw new InvalidArgumentException(field, "an image reference or id is required") : value;
}
