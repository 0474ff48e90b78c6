using System.Formats.Tar;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Crid.Images.Pull;
using Crid.Images.References;
using Crid.Images.Registry;
using Crid.Images.Store;
using Crid.Images.Unpack;

namespace Crid.Images.Import;

/// <summary>
/// `crid import FILE`: loads an OCI image layout archive (image-spec image-layout.md, as
/// `skopeo copy oci-archive:` or `docker save` of recent versions writes) or a Docker archive
/// (`docker save`'s manifest.json) into the store, with the same checks as a pull: every blob's
/// digest, every layer's diff id, and the unpacker's rules. The store's lock is held throughout,
/// so a running daemon waits for the import to finish before it commits or collects anything.
/// </summary>
public sealed class ArchiveImporter(ImageStore store, TextWriter output)
{
    public sealed class ImportException(string message, Exception? inner = null) : Exception(message, inner);

    private readonly Dictionary<string, TarEntry> _entries = new(StringComparer.Ordinal);

    public IReadOnlyList<StoredImage> Import(string archivePath)
    {
        using var _ = store.LockExclusively();
        using var file = new FileStream(archivePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        // A seekable archive: each entry's data stream reads its own slice of the file later on.
        using var reader = new TarReader(file, leaveOpen: true);
        try
        {
            TarEntry? entry;
            while ((entry = reader.GetNextEntry(copyData: false)) is not null)
            {
                if (entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile)
                    _entries[LayerUnpacker.CleanName(entry.Name, "archive entry")] = entry;
            }
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException or LayerException)
        {
            throw new ImportException($"{archivePath} is not a readable tar archive: {e.Message}", e);
        }
        if (_entries.ContainsKey("index.json") && _entries.ContainsKey("oci-layout"))
            return ImportOci();
        if (_entries.ContainsKey("manifest.json"))
            return ImportDocker();
        throw new ImportException($"{archivePath} is neither an OCI layout archive (oci-layout, index.json) nor a Docker archive (manifest.json)");
    }

    private IReadOnlyList<StoredImage> ImportOci()
    {
        var result = new List<StoredImage>();
        using var index = JsonDocument.Parse(Read("index.json", RegistryClient.MaxManifestBytes));
        if (!index.RootElement.TryGetProperty("manifests", out var manifests) || manifests.ValueKind != JsonValueKind.Array)
            throw new ImportException("index.json has no manifests list");
        foreach (var m in manifests.EnumerateArray())
        {
            var top = ImageIndex.ReadDescriptor(m, "index.json entry");
            var topBytes = Blob(top.Digest, RegistryClient.MaxManifestBytes);
            string? name = null;
            if (m.TryGetProperty("annotations", out var a) && a.ValueKind == JsonValueKind.Object)
            {
                var full = ImageIndex.Str(a, "io.containerd.image.name");
                name = full.Length > 0 ? full : ImageIndex.Str(a, "org.opencontainers.image.ref.name");
            }
            var manifestBytes = topBytes;
            var mediaType = top.MediaType.Length > 0 ? top.MediaType : ImageManifest.MediaTypeOf(topBytes);
            var keep = new List<(string, byte[])> { (top.Digest, topBytes) };
            if (MediaTypes.IsIndex(mediaType))
            {
                var chosen = ImageIndex.Parse(topBytes).Pick();
                manifestBytes = Blob(chosen.Digest, RegistryClient.MaxManifestBytes);
                keep.Add((chosen.Digest, manifestBytes));
            }
            var manifest = ImageManifest.Parse(manifestBytes);
            ImageReference? reference = null;
            if (name is { Length: > 0 } && ImageReference.TryParse(name, out var parsed, out _) && (name.Contains('/') || name.Contains(':')))
                reference = parsed;
            else
                output.WriteLine($"crid import: {top.Digest} has no full image name (ref.name \"{name}\"); imported without a name");
            var image = Commit(manifest, RegistryClient.Sha256(manifestBytes), keep, digest => Blob(digest, int.MaxValue, stream: true),
                reference?.TagReference is { } t ? [t] : [],
                reference is null ? [] : [reference.DigestReference(top.Digest)]);
            result.Add(image);
        }
        return result;
    }

    private IReadOnlyList<StoredImage> ImportDocker()
    {
        var result = new List<StoredImage>();
        using var doc = JsonDocument.Parse(Read("manifest.json", RegistryClient.MaxManifestBytes));
        if (doc.RootElement.ValueKind != JsonValueKind.Array)
            throw new ImportException("manifest.json is not a list");
        foreach (var item in doc.RootElement.EnumerateArray())
        {
            var configPath = ImageIndex.Str(item, "Config");
            var configBytes = Read(LayerUnpacker.CleanName(configPath, "Config"), RegistryClient.MaxConfigBytes);
            var layerPaths = item.TryGetProperty("Layers", out var ls) && ls.ValueKind == JsonValueKind.Array
                ? ls.EnumerateArray().Select(l => LayerUnpacker.CleanName(l.GetString() ?? "", "Layers entry")).ToList()
                : throw new ImportException("a manifest.json entry has no Layers list");
            var tags = item.TryGetProperty("RepoTags", out var rt) && rt.ValueKind == JsonValueKind.Array
                ? rt.EnumerateArray().Select(t => ImageReference.Parse(t.GetString() ?? "", "RepoTags").TagReference!).ToArray()
                : [];
            // Docker archives carry no manifest: write the OCI manifest that describes the image as loaded.
            var manifestJson = new JsonObject
            {
                ["schemaVersion"] = 2,
                ["mediaType"] = MediaTypes.OciManifest,
                ["config"] = new JsonObject { ["mediaType"] = MediaTypes.OciConfig, ["digest"] = RegistryClient.Sha256(configBytes), ["size"] = configBytes.Length },
                ["layers"] = new JsonArray(layerPaths.Select(p => (JsonNode)new JsonObject
                {
                    ["mediaType"] = MediaTypes.OciLayer,
                    ["digest"] = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Entry(p).DataStream ?? Stream.Null)),
                    ["size"] = Entry(p).Length,
                }).ToArray()),
            };
            var manifestBytes = Encoding.UTF8.GetBytes(manifestJson.ToJsonString());
            var manifest = ImageManifest.Parse(manifestBytes);
            var byDigest = manifest.Layers.Zip(layerPaths).ToDictionary(x => x.First.Digest, x => x.Second);
            result.Add(Commit(manifest, RegistryClient.Sha256(manifestBytes), [(RegistryClient.Sha256(manifestBytes), manifestBytes)],
                digest => digest == manifest.Config.Digest ? new MemoryStream(configBytes) : Rewind(Entry(byDigest[digest])),
                tags, []));
        }
        return result;
    }

    private StoredImage Commit(ImageManifest manifest, string manifestDigest, List<(string Digest, byte[] Body)> keep,
        Func<string, Stream> open, string[] tags, string[] digests)
    {
        byte[] configBytes;
        using (var s = open(manifest.Config.Digest))
        using (var ms = new MemoryStream())
        {
            s.CopyTo(ms);
            configBytes = ms.ToArray();
        }
        if (RegistryClient.Sha256(configBytes) != manifest.Config.Digest)
            throw new ImportException($"config {manifest.Config.Digest}: the archive's content has another digest");
        var config = ImageConfig.Parse(configBytes);
        if (config.DiffIds.Count != manifest.Layers.Count)
            throw new ImportException($"the manifest has {manifest.Layers.Count} layers but the config {config.DiffIds.Count} diff ids");
        keep.Add((manifest.Config.Digest, configBytes));
        var chains = ImagePuller.ChainIds(config.DiffIds);
        for (var i = 0; i < chains.Length; i++)
        {
            if (store.Layer(chains[i]) is not null)
                continue;
            var (snapshot, folder) = store.NewSnapshot();
            try
            {
                using var blob = open(manifest.Layers[i].Digest);
                var stats = LayerUnpacker.Unpack(blob, folder);
                if (stats.CompressedDigest != manifest.Layers[i].Digest)
                    throw new ImportException($"layer {manifest.Layers[i].Digest}: the archive's content has digest {stats.CompressedDigest}");
                if (stats.DiffId != config.DiffIds[i])
                    throw new ImportException($"layer {manifest.Layers[i].Digest}: uncompressed digest {stats.DiffId}, the config's diff id is {config.DiffIds[i]}");
                store.CommitLayer(new StoredLayer { ChainId = chains[i], DiffId = config.DiffIds[i], Snapshot = snapshot, Bytes = stats.Bytes, Inodes = stats.Inodes });
            }
            catch
            {
                store.DiscardSnapshot(snapshot);
                throw;
            }
        }
        foreach (var (digest, body) in keep)
            store.WriteBlob(digest, body);
        var image = store.CommitImage(new StoredImage
        {
            Id = manifest.Config.Digest,
            ManifestDigest = manifestDigest,
            Layers = chains,
            Size = configBytes.Length + manifest.Layers.Sum(l => l.Size),
            RepoTags = tags,
            RepoDigests = digests,
            Blobs = keep.Select(k => k.Digest).Distinct().ToArray(),
            Created = DateTimeOffset.UtcNow,
        });
        output.WriteLine($"imported {image.Id} {string.Join(" ", tags.Concat(digests))}");
        return image;
    }

    private TarEntry Entry(string name) =>
        _entries.TryGetValue(name, out var e) ? e : throw new ImportException($"the archive has no {name}");

    private static Stream Rewind(TarEntry e)
    {
        var s = e.DataStream ?? Stream.Null;
        s.Position = 0;
        return new NonDisposing(s);
    }

    private byte[] Read(string name, int max)
    {
        var e = Entry(name);
        if (e.Length > max)
            throw new ImportException($"{name} is {e.Length} bytes, more than {max}");
        using var ms = new MemoryStream();
        Rewind(e).CopyTo(ms);
        return ms.ToArray();
    }

    private Stream Blob(string digest, int max, bool stream = false) => stream ? Rewind(Entry("blobs/sha256/" + ImageStore.Hex(digest))) : new MemoryStream(Blob(digest, max));

    private byte[] Blob(string digest, int max)
    {
        var bytes = Read("blobs/sha256/" + ImageStore.Hex(digest), max);
        if (RegistryClient.Sha256(bytes) != digest)
            throw new ImportException($"blob {digest}: the archive's content has another digest");
        return bytes;
    }

    /// <summary>Entry data streams belong to the reader: the unpacker's using must not close them.</summary>
    private sealed class NonDisposing(Stream inner) : Stream
    {
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
