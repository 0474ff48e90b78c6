using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Crid.Images.Tests.Support;

public enum Compression { None, Gzip, Zstd }

/// <summary>A layer blob as a registry serves it, and its uncompressed digest.</summary>
public sealed record TestLayer(byte[] Blob, string Digest, string DiffId, string MediaType);

/// <summary>
/// An image built in memory by the test itself: tar layers (from Debian's busybox-static and
/// hand-made entries), its config, manifest, and optionally a multi-arch index around it.
/// </summary>
public sealed class TestImage
{
    public required IReadOnlyList<TestLayer> Layers { get; init; }
    public required byte[] Config { get; init; }
    public required byte[] Manifest { get; init; }
    public byte[]? Index { get; init; }
    /// <summary>Blobs of the other platforms' manifests an index names.</summary>
    public Dictionary<string, byte[]> ExtraBlobs { get; init; } = [];

    public string ConfigDigest => Digest(Config);
    public string ManifestDigest => Digest(Manifest);
    public string TopDigest => Digest(Index ?? Manifest);
    public string TopMediaType => Index is null ? "application/vnd.oci.image.manifest.v1+json" : "application/vnd.oci.image.index.v1+json";
    public byte[] Top => Index ?? Manifest;

    public IEnumerable<(string Digest, byte[] Body)> Blobs()
    {
        yield return (ConfigDigest, Config);
        yield return (ManifestDigest, Manifest);
        foreach (var l in Layers)
            yield return (l.Digest, l.Blob);
        foreach (var (d, b) in ExtraBlobs)
            yield return (d, b);
        if (Index is not null)
            yield return (TopDigest, Index);
    }

    public static string Digest(byte[] bytes) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static TestLayer Layer(byte[] tar, Compression compression = Compression.Gzip)
    {
        byte[] blob;
        string mediaType;
        switch (compression)
        {
            case Compression.Gzip:
                using (var ms = new MemoryStream())
                {
                    using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
                        gz.Write(tar);
                    blob = ms.ToArray();
                }
                mediaType = "application/vnd.oci.image.layer.v1.tar+gzip";
                break;
            case Compression.Zstd:
                using (var ms = new MemoryStream())
                {
                    using (var z = new ZstdSharp.CompressionStream(ms, 3, leaveOpen: true))
                        z.Write(tar);
                    blob = ms.ToArray();
                }
                mediaType = "application/vnd.oci.image.layer.v1.tar+zstd";
                break;
            default:
                blob = tar;
                mediaType = "application/vnd.oci.image.layer.v1.tar";
                break;
        }
        return new TestLayer(blob, Digest(blob), Digest(tar), mediaType);
    }

    /// <summary>An image of these layers; <paramref name="multiArch"/> wraps it in an index with an arm64 entry and an attestation.</summary>
    public static TestImage Build(IReadOnlyList<TestLayer> layers, string user = "", bool multiArch = false, string? label = null, string[]? diffIdsOverride = null,
        string[]? volumes = null)
    {
        var config = new JsonObject
        {
            ["architecture"] = "amd64",
            ["os"] = "linux",
            ["created"] = "2024-01-01T00:00:00Z",
            ["config"] = new JsonObject
            {
                ["User"] = user,
                ["Env"] = new JsonArray("PATH=/bin"),
                ["Cmd"] = new JsonArray("/bin/sh"),
                ["Labels"] = new JsonObject { ["test"] = label ?? Guid.NewGuid().ToString() },
            },
            ["rootfs"] = new JsonObject
            {
                ["type"] = "layers",
                ["diff_ids"] = new JsonArray((diffIdsOverride ?? layers.Select(l => l.DiffId).ToArray()).Select(d => (JsonNode)d!).ToArray()),
            },
        };
        if (volumes is not null)
        {
            // image-spec config.md: "Volumes", an object whose keys are paths and values empty objects.
            var set = new JsonObject();
            foreach (var v in volumes)
                set[v] = new JsonObject();
            ((JsonObject)config["config"]!)["Volumes"] = set;
        }
        var configBytes = Encoding.UTF8.GetBytes(config.ToJsonString());
        var manifest = ManifestOf(configBytes, layers);
        if (!multiArch)
            return new TestImage { Layers = layers, Config = configBytes, Manifest = manifest };
        // Another platform's manifest, and a BuildKit-style attestation: both must be skipped.
        var armConfig = Encoding.UTF8.GetBytes(config.ToJsonString().Replace("\"amd64\"", "\"arm64\""));
        var armManifest = ManifestOf(armConfig, layers);
        var attestationConfig = Encoding.UTF8.GetBytes("{\"rootfs\":{\"diff_ids\":[]}}");
        var attestation = ManifestOf(attestationConfig, []);
        var index = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = "application/vnd.oci.image.index.v1+json",
            ["manifests"] = new JsonArray(
                Entry(armManifest, "arm64"),
                Entry(attestation, "unknown", "unknown", attestationFor: Digest(manifest)),
                Entry(manifest, "amd64")),
        };
        return new TestImage
        {
            Layers = layers,
            Config = configBytes,
            Manifest = manifest,
            Index = Encoding.UTF8.GetBytes(index.ToJsonString()),
            ExtraBlobs = new() { [Digest(armManifest)] = armManifest, [Digest(armConfig)] = armConfig, [Digest(attestation)] = attestation, [Digest(attestationConfig)] = attestationConfig },
        };
    }

    private static JsonObject Entry(byte[] manifest, string arch, string os = "linux", string? attestationFor = null)
    {
        var e = new JsonObject
        {
            ["mediaType"] = "application/vnd.oci.image.manifest.v1+json",
            ["digest"] = Digest(manifest),
            ["size"] = manifest.Length,
            ["platform"] = new JsonObject { ["architecture"] = arch, ["os"] = os },
        };
        if (attestationFor is not null)
            e["annotations"] = new JsonObject { ["vnd.docker.reference.type"] = "attestation-manifest", ["vnd.docker.reference.digest"] = attestationFor };
        return e;
    }

    private static byte[] ManifestOf(byte[] config, IReadOnlyList<TestLayer> layers) => Encoding.UTF8.GetBytes(new JsonObject
    {
        ["schemaVersion"] = 2,
        ["mediaType"] = "application/vnd.oci.image.manifest.v1+json",
        ["config"] = new JsonObject { ["mediaType"] = "application/vnd.oci.image.config.v1+json", ["digest"] = Digest(config), ["size"] = config.Length },
        ["layers"] = new JsonArray(layers.Select(l => (JsonNode)new JsonObject { ["mediaType"] = l.MediaType, ["digest"] = l.Digest, ["size"] = l.Blob.Length }).ToArray()),
    }.ToJsonString());

    /// <summary>Writes the image as an OCI image layout (image-spec image-layout.md) under <paramref name="dir"/>, named <paramref name="refName"/>.</summary>
    public void WriteLayout(string dir, string refName)
    {
        var blobs = Path.Combine(dir, "blobs", "sha256");
        Directory.CreateDirectory(blobs);
        File.WriteAllText(Path.Combine(dir, "oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
        foreach (var (d, b) in Blobs())
            File.WriteAllBytes(Path.Combine(blobs, d[7..]), b);
        var index = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["manifests"] = new JsonArray(new JsonObject
            {
                ["mediaType"] = TopMediaType,
                ["digest"] = TopDigest,
                ["size"] = Top.Length,
                ["annotations"] = new JsonObject { ["org.opencontainers.image.ref.name"] = refName },
            }),
        };
        File.WriteAllText(Path.Combine(dir, "index.json"), index.ToJsonString());
    }
}

/// <summary>Tar layers written with System.Formats.Tar's TarWriter.</summary>
public sealed class TarBuilder
{
    private readonly MemoryStream _ms = new();
    private readonly TarWriter _w;
    private static readonly DateTimeOffset Mtime = new(2024, 1, 2, 3, 4, 5, TimeSpan.Zero);

    public TarBuilder() => _w = new TarWriter(_ms, TarEntryFormat.Pax, leaveOpen: true);

    public TarBuilder Dir(string name, int mode = 0x1ED, int uid = 0, int gid = 0)
    {
        _w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, name) { Mode = (UnixFileMode)mode, Uid = uid, Gid = gid, ModificationTime = Mtime });
        return this;
    }

    public TarBuilder File(string name, byte[] content, int mode = 0x1A4, int uid = 0, int gid = 0, IDictionary<string, string>? pax = null)
    {
        var e = new PaxTarEntry(TarEntryType.RegularFile, name, pax ?? new Dictionary<string, string>())
        {
            Mode = (UnixFileMode)mode, Uid = uid, Gid = gid, ModificationTime = Mtime, DataStream = new MemoryStream(content),
        };
        _w.WriteEntry(e);
        return this;
    }

    public TarBuilder File(string name, string content, int mode = 0x1A4, int uid = 0, int gid = 0, IDictionary<string, string>? pax = null) =>
        File(name, Encoding.UTF8.GetBytes(content), mode, uid, gid, pax);

    public TarBuilder Symlink(string name, string target)
    {
        _w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, name) { LinkName = target, ModificationTime = Mtime });
        return this;
    }

    public TarBuilder HardLink(string name, string target)
    {
        _w.WriteEntry(new PaxTarEntry(TarEntryType.HardLink, name) { LinkName = target, ModificationTime = Mtime });
        return this;
    }

    public TarBuilder CharDevice(string name, int major, int minor)
    {
        _w.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, name) { DeviceMajor = major, DeviceMinor = minor, Mode = (UnixFileMode)0x1B6, ModificationTime = Mtime });
        return this;
    }

    public TarBuilder Fifo(string name)
    {
        _w.WriteEntry(new PaxTarEntry(TarEntryType.Fifo, name) { Mode = (UnixFileMode)0x1A4, ModificationTime = Mtime });
        return this;
    }

    /// <summary>A root file system of Debian's busybox-static: /bin/busybox and a few applet links.</summary>
    public TarBuilder Busybox()
    {
        Dir("bin/").Dir("etc/").Dir("tmp/", 0x3FF);
        File("bin/busybox", System.IO.File.ReadAllBytes(TestHost.Busybox), 0x1ED);
        foreach (var applet in new[] { "sh", "ls", "cat", "echo", "sleep" })
            HardLink($"bin/{applet}", "bin/busybox");
        File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n");
        File("etc/group", "root:x:0:\nwww-data:x:33:\n");
        return this;
    }

    public byte[] Build()
    {
        _w.Dispose();
        return _ms.ToArray();
    }
}

internal static class TestHost
{
    public const string Busybox = "/bin/busybox";

    public static bool IsRoot => Environment.UserName == "root";
}
