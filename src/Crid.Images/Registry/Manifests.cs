using System.Runtime.InteropServices;
using System.Text.Json;
using Crid.Core.Images;

namespace Crid.Images.Registry;

/// <summary>A content descriptor (image-spec descriptor.md): what a manifest or index points at.</summary>
public sealed record Descriptor(string MediaType, string Digest, long Size);

/// <summary>The media types crid reads, OCI's and Docker's schema 2 (image-spec media-types.md).</summary>
public static class MediaTypes
{
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciConfig = "application/vnd.oci.image.config.v1+json";
    public const string OciLayer = "application/vnd.oci.image.layer.v1.tar";
    public const string OciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    public const string OciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
    public const string DockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerConfig = "application/vnd.docker.container.image.v1+json";
    public const string DockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    public const string DockerSchema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// <summary>The Accept header of a manifest GET: every kind crid can read, indexes first.</summary>
    public static readonly string[] Manifests = [OciIndex, DockerList, OciManifest, DockerManifest];

    public static bool IsIndex(string mediaType) => mediaType is OciIndex or DockerList;

    public static bool IsManifest(string mediaType) => mediaType is OciManifest or DockerManifest;

    public static bool IsLayer(string mediaType) =>
        mediaType is OciLayer or OciLayerGzip or OciLayerZstd or DockerLayer
        || mediaType == "application/vnd.docker.image.rootfs.diff.tar";
}

/// <summary>A malformed or unusable manifest, index or config; the message says which and why.</summary>
public sealed class ManifestException(string message) : Exception(message);

/// <summary>An image index or Docker manifest list (image-spec image-index.md).</summary>
public sealed record ImageIndex(IReadOnlyList<(Descriptor Descriptor, string Os, string Architecture, string Variant, bool Attestation)> Manifests)
{
    public static ImageIndex Parse(ReadOnlySpan<byte> json)
    {
        using var doc = Document(json, "image index");
        if (!doc.RootElement.TryGetProperty("manifests", out var list) || list.ValueKind != JsonValueKind.Array)
            throw new ManifestException("the image index has no \"manifests\" list");
        var entries = new List<(Descriptor, string, string, string, bool)>();
        foreach (var m in list.EnumerateArray())
        {
            var d = ReadDescriptor(m, "image index entry");
            string os = "", arch = "", variant = "";
            if (m.TryGetProperty("platform", out var p) && p.ValueKind == JsonValueKind.Object)
            {
                os = Str(p, "os");
                arch = Str(p, "architecture");
                variant = Str(p, "variant");
            }
            // BuildKit publishes provenance and SBOMs as index entries of platform unknown/unknown.
            var attestation = (os == "unknown" && arch == "unknown")
                || (m.TryGetProperty("annotations", out var a) && a.ValueKind == JsonValueKind.Object
                    && Str(a, "vnd.docker.reference.type") == "attestation-manifest");
            entries.Add((d, os, arch, variant, attestation));
        }
        return new ImageIndex(entries);
    }

    /// <summary>The entry for this machine (linux and the daemon's own architecture), skipping attestations.</summary>
    public Descriptor Pick()
    {
        var arch = HostArchitecture;
        foreach (var m in Manifests)
        {
            if (!m.Attestation && m.Os == "linux" && m.Architecture == arch && MediaTypes.IsManifest(m.Descriptor.MediaType))
                return m.Descriptor;
        }
        var offered = string.Join(", ", Manifests.Where(m => !m.Attestation).Select(m => $"{m.Os}/{m.Architecture}"));
        throw new ManifestException($"the image has no linux/{arch} manifest (it offers: {(offered.Length == 0 ? "nothing" : offered)})");
    }

    public static string HostArchitecture => RuntimeInformation.OSArchitecture switch
    {
        Architecture.X64 => "amd64",
        Architecture.Arm64 => "arm64",
        Architecture.Arm => "arm",
        Architecture.X86 => "386",
        Architecture.S390x => "s390x",
        Architecture.Ppc64le => "ppc64le",
        var other => other.ToString().ToLowerInvariant(),
    };

    internal static JsonDocument Document(ReadOnlySpan<byte> json, string what)
    {
        try
        {
            var doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 32 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                doc.Dispose();
                throw new ManifestException($"the {what} is not a JSON object");
            }
            return doc;
        }
        catch (JsonException e)
        {
            throw new ManifestException($"the {what} is not valid JSON: {e.Message}");
        }
    }

    internal static Descriptor ReadDescriptor(JsonElement e, string what)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new ManifestException($"a {what} is not an object");
        var digest = Str(e, "digest");
        if (!References.ImageReference.IsDigest(digest))
            throw new ManifestException($"a {what} has digest \"{digest}\", not sha256:<64 hex digits>");
        if (!e.TryGetProperty("size", out var s) || !s.TryGetInt64(out var size) || size < 0)
            throw new ManifestException($"the {what} {digest} has no valid size");
        return new Descriptor(Str(e, "mediaType"), digest, size);
    }

    internal static string Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() ?? "" : "";
}

/// <summary>An image manifest (image-spec manifest.md) or Docker schema 2 manifest.</summary>
public sealed record ImageManifest(Descriptor Config, IReadOnlyList<Descriptor> Layers)
{
    /// <summary>Nothing crid will unpack has more layers than overlayfs can stack (it allows 500).</summary>
    public const int MaxLayers = 128;

    public static ImageManifest Parse(ReadOnlySpan<byte> json)
    {
        using var doc = ImageIndex.Document(json, "image manifest");
        var root = doc.RootElement;
        if (!root.TryGetProperty("config", out var c))
            throw new ManifestException("the image manifest has no \"config\"");
        var config = ImageIndex.ReadDescriptor(c, "manifest config");
        if (!root.TryGetProperty("layers", out var ls) || ls.ValueKind != JsonValueKind.Array)
            throw new ManifestException("the image manifest has no \"layers\" list");
        var layers = new List<Descriptor>();
        foreach (var l in ls.EnumerateArray())
        {
            var d = ImageIndex.ReadDescriptor(l, "manifest layer");
            if (d.MediaType.Length > 0 && !MediaTypes.IsLayer(d.MediaType))
                throw new ManifestException($"layer {d.Digest} has media type \"{d.MediaType}\", which crid cannot unpack");
            layers.Add(d);
        }
        if (layers.Count > MaxLayers)
            throw new ManifestException($"the image has {layers.Count} layers; crid stacks at most {MaxLayers}");
        return new ImageManifest(config, layers);
    }

    /// <summary>The media type a manifest says it is (its "mediaType" field), "" when it does not say.</summary>
    public static string MediaTypeOf(ReadOnlySpan<byte> json)
    {
        using var doc = ImageIndex.Document(json, "manifest");
        var t = ImageIndex.Str(doc.RootElement, "mediaType");
        if (t.Length == 0 && doc.RootElement.TryGetProperty("manifests", out _))
            return MediaTypes.OciIndex;
        if (t.Length == 0 && doc.RootElement.TryGetProperty("schemaVersion", out var v) && v.ValueKind == JsonValueKind.Number && v.GetInt32() == 1)
            return MediaTypes.DockerSchema1;
        return t.Length == 0 ? MediaTypes.OciManifest : t;
    }
}

/// <summary>The image config (image-spec config.md): the layers' diff ids and the process defaults.</summary>
public sealed record ImageConfig(IReadOnlyList<string> DiffIds, ImageRuntimeConfig Runtime, string Os, string Architecture)
{
    public static ImageConfig Parse(ReadOnlySpan<byte> json)
    {
        using var doc = ImageIndex.Document(json, "image config");
        var root = doc.RootElement;
        var diffIds = new List<string>();
        if (!root.TryGetProperty("rootfs", out var rootfs) || !rootfs.TryGetProperty("diff_ids", out var ids) || ids.ValueKind != JsonValueKind.Array)
            throw new ManifestException("the image config has no rootfs.diff_ids");
        foreach (var id in ids.EnumerateArray())
        {
            var s = id.ValueKind == JsonValueKind.String ? id.GetString() ?? "" : "";
            if (!References.ImageReference.IsDigest(s))
                throw new ManifestException($"the image config has diff id \"{s}\", not sha256:<64 hex digits>");
            diffIds.Add(s);
        }
        var runtime = new ImageRuntimeConfig();
        if (root.TryGetProperty("config", out var c) && c.ValueKind == JsonValueKind.Object)
        {
            runtime = new ImageRuntimeConfig
            {
                User = ImageIndex.Str(c, "User"),
                Env = Strings(c, "Env"),
                Entrypoint = Strings(c, "Entrypoint"),
                Cmd = Strings(c, "Cmd"),
                WorkingDir = ImageIndex.Str(c, "WorkingDir"),
                StopSignal = ImageIndex.Str(c, "StopSignal"),
                Labels = c.TryGetProperty("Labels", out var l) && l.ValueKind == JsonValueKind.Object
                    ? l.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.String).ToDictionary(p => p.Name, p => p.Value.GetString() ?? "")
                    : new Dictionary<string, string>(),
                Volumes = c.TryGetProperty("Volumes", out var v) && v.ValueKind == JsonValueKind.Object
                    ? v.EnumerateObject().Select(p => p.Name).ToArray()
                    : [],
            };
        }
        return new ImageConfig(diffIds, runtime, ImageIndex.Str(root, "os"), ImageIndex.Str(root, "architecture"));
    }

    private static string[] Strings(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
            ? v.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString() ?? "").ToArray()
            : [];
}
