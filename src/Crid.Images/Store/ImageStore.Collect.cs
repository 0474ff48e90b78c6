using System.Text.Json;

namespace Crid.Images.Store;

public sealed partial class ImageStore
{
    /// <summary>
    /// At daemon start, before any pull: removes what a crash left outside the index (partial
    /// files, unpacked folders no committed layer names, folders being deleted), drops layers whose
    /// folder is gone and the images built on them, then collects.
    /// </summary>
    public void Recover()
    {
        _gate.Wait();
        try
        {
            using (StoreFiles.Lock(LockPath))
            {
                Reload(force: true);
                foreach (var dir in new[] { TmpDir, TrashDir })
                {
                    foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos())
                        StoreFiles.RemoveTree(entry.FullName);
                }
                var known = _index.Layers.Select(l => l.Snapshot).ToHashSet();
                var remains = 0;
                foreach (var d in new DirectoryInfo(SnapshotsDir).EnumerateFileSystemInfos())
                {
                    if (int.TryParse(d.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && known.Contains(n))
                        continue;
                    StoreFiles.RemoveTree(d.FullName);
                    remains++;
                }
                var missing = _index.Layers.Where(l => !Directory.Exists(SnapshotPath(l.Snapshot))).Select(l => l.ChainId).ToHashSet();
                if (missing.Count > 0)
                {
                    var broken = _index.Images.Where(i => i.Layers.Any(missing.Contains)).ToList();
                    foreach (var image in broken)
                        ImagesLog.ImageBroken(_log, image.Id, string.Join(", ", image.RepoTags));
                    Write(_index with
                    {
                        Layers = _index.Layers.Where(l => !missing.Contains(l.ChainId)).ToArray(),
                        Images = _index.Images.Except(broken).ToArray(),
                    });
                }
                CollectLocked();
                _nextSnapshot = Math.Max(_nextSnapshot, ExistingSnapshots().DefaultIfEmpty(0).Max());
                if (remains > 0)
                    ImagesLog.RemainsRemoved(_log, remains);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Removes layers and blobs that no image, no container hold and no pull in flight needs.</summary>
    public void Collect() => Mutate(_ =>
    {
        _collectAfterMutate = true;
        return _;
    });

    private void CollectLocked()
    {
        var index = _index;
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var image in index.Images)
        {
            used.UnionWith(image.Layers);
            used.UnionWith(image.Blobs);
        }
        foreach (var hold in ReadHolds())
            used.UnionWith(hold.Record.Layers);
        used.UnionWith(_pins.Keys);

        var dead = index.Layers.Where(l => !used.Contains(l.ChainId)).ToList();
        if (dead.Count > 0)
        {
            Write(index with { Layers = index.Layers.Where(l => used.Contains(l.ChainId)).ToArray() });
            foreach (var layer in dead)
            {
                // Out of the index first, then out of sight (rename), then deleted: a crash at any
                // step leaves a folder that the next start removes.
                var trash = Path.Combine(TrashDir, $"{layer.Snapshot}-{Random.Shared.Next():x}");
                try
                {
                    Directory.Move(SnapshotPath(layer.Snapshot), trash);
                    StoreFiles.RemoveTree(trash);
                }
                catch (DirectoryNotFoundException)
                {
                }
            }
            ImagesLog.LayersCollected(_log, dead.Count);
        }
        foreach (var blob in new DirectoryInfo(BlobsDir).EnumerateFiles())
        {
            if (!used.Contains("sha256:" + blob.Name))
                blob.Delete();
        }
    }

    private IEnumerable<(string ContainerId, HoldRecord Record)> ReadHolds()
    {
        foreach (var file in new DirectoryInfo(HoldsDir).EnumerateFiles("*.json"))
        {
            if (ReadHold(file.FullName) is { } record)
                yield return (Path.GetFileNameWithoutExtension(file.Name), record);
        }
    }

    /// <summary>One hold record; null when it is missing, empty or unreadable (logged).</summary>
    private HoldRecord? ReadHold(string path)
    {
        try
        {
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length > 0)
                return JsonSerializer.Deserialize(bytes, StoreJson.Default.HoldRecord);
        }
        catch (FileNotFoundException)
        {
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            ImagesLog.HoldUnreadable(_log, path, e.Message);
        }
        return null;
    }
}
