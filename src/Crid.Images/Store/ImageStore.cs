using System.Collections.Concurrent;
using System.Text.Json;
using Crid.Core.Errors;
using Crid.Images.References;
using Crid.Linux;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Crid.Images.Store;

/// <summary>
/// The content store under <c>&lt;state-dir&gt;/images</c>:
/// <code>
/// index.json             images (id, layers, names) and layers (chain id -> snapshot): the commit point
/// blobs/sha256/&lt;hex&gt;     manifests, indexes and configs, content-addressed
/// snapshots/&lt;n&gt;          one unpacked layer each, shared by chain id
/// holds/&lt;container&gt;.json  a container's durable hold on its image's layers
/// tmp/, trash/           partial writes and folders being deleted: emptied at start
/// lock                   flock: the daemon's commits and a whole `crid import` take it
/// </code>
/// A snapshot or blob becomes part of the store only when index.json names it; whatever a crash
/// leaves outside it is removed by <see cref="Recover"/>.
/// </summary>
public sealed partial class ImageStore : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ConcurrentDictionary<string, int> _pins = new(StringComparer.Ordinal);
    private readonly ILogger _log;
    private volatile StoreIndex _index = new();
    private (long Inode, DateTime Mtime, long Size) _stamp;
    private int _nextSnapshot;
    private bool _collectAfterMutate;
    private FileStream? _heldLock;

    public ImageStore(string root, ILogger? log = null)
    {
        Root = root;
        _log = log ?? NullLogger.Instance;
        foreach (var dir in new[] { root, BlobsDir, SnapshotsDir, TmpDir, TrashDir, HoldsDir })
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // Layer folders are overlay lowerdirs of containers that may run as any user: the path to them must be searchable.
        File.SetUnixFileMode(SnapshotsDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        File.SetUnixFileMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        _nextSnapshot = ExistingSnapshots().DefaultIfEmpty(0).Max();
        Reload(force: true);
    }

    public string Root { get; }
    internal string BlobsDir => Path.Combine(Root, "blobs", "sha256");
    internal string SnapshotsDir => Path.Combine(Root, "snapshots");
    internal string TmpDir => Path.Combine(Root, "tmp");
    internal string TrashDir => Path.Combine(Root, "trash");
    internal string HoldsDir => Path.Combine(Root, "holds");
    private string IndexPath => Path.Combine(Root, "index.json");
    private string LockPath => Path.Combine(Root, "lock");

    /// <summary>The index as last committed (by this daemon or by an import), read again when it changed.</summary>
    public StoreIndex Current
    {
        get
        {
            Reload(force: false);
            return _index;
        }
    }

    public string SnapshotPath(int snapshot) => Path.Combine(SnapshotsDir, snapshot.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public string BlobPath(string digest) => Path.Combine(BlobsDir, Hex(digest));

    /// <summary>
    /// The image a CRI request names: an id (<c>sha256:&lt;hex&gt;</c> or the bare hex), a tag or
    /// digest reference (normalised), or a unique prefix of an id. Null when none is present.
    /// </summary>
    /// <exception cref="InvalidArgumentException">the text is neither an id nor a valid reference.</exception>
    public StoredImage? Lookup(string text, string field = "image.image")
    {
        var index = Current;
        if (ImageReference.IsImageId(text))
        {
            var id = text.StartsWith("sha256:", StringComparison.Ordinal) ? text : "sha256:" + text;
            return index.Images.FirstOrDefault(i => i.Id == id);
        }
        var parsed = ImageReference.TryParse(text, out var reference, out var problem);
        if (parsed)
        {
            var found = reference.Digest is { } digest
                ? index.Images.FirstOrDefault(i => i.RepoDigests.Contains(reference.DigestReference(digest)))
                : index.Images.FirstOrDefault(i => i.RepoTags.Contains(reference.TagReference!));
            if (found is not null)
                return found;
        }
        var hex = text.StartsWith("sha256:", StringComparison.Ordinal) ? text[7..] : text;
        if (hex.Length is > 0 and < 64 && ImageReference.IsHex(hex))
        {
            var matches = index.Images.Where(i => i.Id.AsSpan(7).StartsWith(hex, StringComparison.Ordinal)).Take(2).ToList();
            if (matches.Count == 1)
                return matches[0];
        }
        if (!parsed)
            throw new InvalidArgumentException(field, problem);
        return null;
    }

    public StoredLayer? Layer(string chainId) => Current.Layers.FirstOrDefault(l => l.ChainId == chainId);

    /// <summary>A kept blob's bytes, or null when it is not in the store.</summary>
    public byte[]? ReadBlob(string digest)
    {
        try { return File.ReadAllBytes(BlobPath(digest)); }
        catch (FileNotFoundException) { return null; }
    }

    /// <summary>Stores a blob whose digest the caller has checked; an existing one is kept.</summary>
    public void WriteBlob(string digest, ReadOnlySpan<byte> content)
    {
        var path = BlobPath(digest);
        if (!File.Exists(path))
            StoreFiles.WriteAtomic(path, content, TmpDir);
    }

    /// <summary>A new, empty snapshot folder, not yet part of the store.</summary>
    public (int Id, string Path) NewSnapshot()
    {
        while (true)
        {
            var id = Interlocked.Increment(ref _nextSnapshot);
            var path = SnapshotPath(id);
            // mkdir is the allocation: atomic against another process (an import) taking the same number.
            if (Directory.Exists(path))
                continue;
            try
            {
                var info = Directory.CreateDirectory(path);
                info.UnixFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                    | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
                return (id, path);
            }
            catch (IOException) when (Directory.Exists(path))
            {
            }
        }
    }

    /// <summary>Removes a snapshot folder that never became part of the store (a failed unpack).</summary>
    public void DiscardSnapshot(int id) => StoreFiles.RemoveTree(SnapshotPath(id));

    /// <summary>
    /// Makes an unpacked snapshot part of the store under its chain id. When another pull committed
    /// the same chain id first, that layer wins and the caller's folder is discarded.
    /// </summary>
    public StoredLayer CommitLayer(StoredLayer layer)
    {
        StoredLayer result = layer;
        Mutate(index =>
        {
            var existing = index.Layers.FirstOrDefault(l => l.ChainId == layer.ChainId);
            if (existing is not null)
            {
                result = existing;
                return index;
            }
            return index with { Layers = [.. index.Layers, layer] };
        });
        if (result.Snapshot != layer.Snapshot)
            DiscardSnapshot(layer.Snapshot);
        return result;
    }

    /// <summary>
    /// Adds an image (or new names for a present one). Each of its names leaves whatever image had
    /// it; an image left with no name at all is removed, its layers collected unless held.
    /// </summary>
    public StoredImage CommitImage(StoredImage image)
    {
        StoredImage result = image;
        Mutate(index =>
        {
            var names = image.RepoTags.Concat(image.RepoDigests).ToHashSet(StringComparer.Ordinal);
            var images = new List<StoredImage>();
            var merged = false;
            foreach (var old in index.Images)
            {
                if (old.Id == image.Id)
                {
                    result = old with
                    {
                        RepoTags = old.RepoTags.Union(image.RepoTags).ToArray(),
                        RepoDigests = old.RepoDigests.Union(image.RepoDigests).ToArray(),
                        Blobs = old.Blobs.Union(image.Blobs).ToArray(),
                        Layers = image.Layers,
                        ManifestDigest = image.ManifestDigest,
                    };
                    images.Add(result);
                    merged = true;
                    continue;
                }
                var kept = old with
                {
                    RepoTags = old.RepoTags.Where(n => !names.Contains(n)).ToArray(),
                    RepoDigests = old.RepoDigests.Where(n => !names.Contains(n)).ToArray(),
                };
                if (kept.RepoTags.Count + kept.RepoDigests.Count == 0 && old.RepoTags.Count + old.RepoDigests.Count > 0)
                {
                    _collectAfterMutate = true;
                    continue;
                }
                images.Add(kept);
            }
            if (!merged)
                images.Add(image);
            return index with { Images = images };
        });
        return result;
    }

    /// <summary>Removes an image and all its names; its layers go unless a container holds them. False when absent.</summary>
    public bool Remove(string imageId)
    {
        var removed = false;
        Mutate(index =>
        {
            var images = index.Images.Where(i => i.Id != imageId).ToArray();
            removed = images.Length != index.Images.Count;
            if (removed && index.Images.First(i => i.Id == imageId) is var gone)
                ImagesLog.ImageRemoved(_log, imageId, string.Join(", ", gone.RepoTags.Concat(gone.RepoDigests)));
            if (removed)
                _collectAfterMutate = true;
            return removed ? index with { Images = images } : index;
        });
        return removed;
    }

    /// <summary>
    /// Keeps blobs and snapshots an in-flight pull has written but not yet committed an image for,
    /// out of a collection's reach until the returned handle is disposed.
    /// </summary>
    public IDisposable Pin(IEnumerable<string> keys)
    {
        var list = keys.ToArray();
        foreach (var k in list)
            _pins.AddOrUpdate(k, 1, (_, n) => n + 1);
        return new Unpin(this, list);
    }

    private sealed class Unpin(ImageStore store, string[] keys) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) != 0)
                return;
            foreach (var k in keys)
            {
                while (true)
                {
                    var n = store._pins.GetValueOrDefault(k);
                    if (n <= 1 ? store._pins.TryRemove(new KeyValuePair<string, int>(k, n)) : store._pins.TryUpdate(k, n - 1, n))
                        break;
                }
            }
        }
    }

    /// <summary>Bytes and inodes of everything the store holds, from what unpacking counted and the blob files.</summary>
    public (ulong Bytes, ulong Inodes) Usage()
    {
        var index = Current;
        ulong bytes = 0, inodes = 0;
        foreach (var l in index.Layers)
        {
            bytes += (ulong)l.Bytes;
            inodes += (ulong)l.Inodes;
        }
        foreach (var f in new DirectoryInfo(BlobsDir).EnumerateFiles())
        {
            bytes += (ulong)f.Length;
            inodes++;
        }
        return (bytes, inodes);
    }

    public void Dispose() => _gate.Dispose();

    /// <summary>
    /// Holds the store's lock until disposed (`crid import`): a daemon on the same store waits to
    /// commit or collect, so it can never collect a layer the import committed but has not yet
    /// named in an image.
    /// </summary>
    public IDisposable LockExclusively()
    {
        _heldLock = StoreFiles.Lock(LockPath);
        return new Unlock(this);
    }

    private sealed class Unlock(ImageStore store) : IDisposable
    {
        public void Dispose()
        {
            store._heldLock?.Dispose();
            store._heldLock = null;
        }
    }

    /// <summary>
    /// Changes the index under the in-process gate and the cross-process lock, starting from the
    /// newest committed version, and writes it atomically when it changed. Collects afterwards when
    /// the change dropped an image.
    /// </summary>
    private void Mutate(Func<StoreIndex, StoreIndex> change)
    {
        bool collect;
        _gate.Wait();
        try
        {
            using (_heldLock is null ? StoreFiles.Lock(LockPath) : null)
            {
                Reload(force: false);
                _collectAfterMutate = false;
                var next = change(_index);
                if (!ReferenceEquals(next, _index))
                    Write(next);
                collect = _collectAfterMutate;
                if (collect)
                    CollectLocked();
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private void Write(StoreIndex next)
    {
        StoreFiles.WriteAtomic(IndexPath, JsonSerializer.SerializeToUtf8Bytes(next, StoreJson.Default.StoreIndex), TmpDir);
        _index = next;
        _stamp = Stamp();
    }

    private void Reload(bool force)
    {
        var stamp = Stamp();
        if (!force && stamp == _stamp)
            return;
        lock (_pins)
        {
            StoreIndex next;
            try
            {
                var bytes = File.ReadAllBytes(IndexPath);
                next = bytes.Length == 0 ? new StoreIndex() : JsonSerializer.Deserialize(bytes, StoreJson.Default.StoreIndex) ?? new StoreIndex();
            }
            catch (FileNotFoundException)
            {
                next = new StoreIndex();
            }
            catch (JsonException e)
            {
                // Only a host crash can leave this (the write is atomic): keep the evidence, start empty.
                var aside = IndexPath + ".corrupt-" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture);
                File.Move(IndexPath, aside, overwrite: true);
                ImagesLog.IndexCorrupt(_log, IndexPath, aside, e.Message);
                next = new StoreIndex();
            }
            _index = next;
            _stamp = stamp;
        }
    }

    private (long, DateTime, long) Stamp()
    {
        var info = new FileInfo(IndexPath);
        if (!info.Exists)
            return (0, default, -1);
        // rename(2) over the file gives a new inode: stat's inode and mtime tell a new version apart.
        return ((long)Crid.Linux.Unpack.FileIdentity.Inode(IndexPath), info.LastWriteTimeUtc, info.Length);
    }

    private IEnumerable<int> ExistingSnapshots() =>
        new DirectoryInfo(SnapshotsDir).EnumerateDirectories()
            .Select(d => int.TryParse(d.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 0);

    internal static string Hex(string digest) =>
        ImageReference.IsDigest(digest) ? digest[7..] : throw new ArgumentException($"not a sha256 digest: {digest}", nameof(digest));
}
