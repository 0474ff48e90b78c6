using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Crid.Core.Errors;
using Crid.Images.References;
using Crid.Images.Registry;
using Crid.Images.Store;
using Crid.Images.Unpack;
using Microsoft.Extensions.Logging;

namespace Crid.Images.Pull;

/// <summary>
/// PullImage: resolves a reference through the registries list, fetches the manifest (choosing
/// this platform from an index), the config and every layer not yet present, unpacking each layer
/// while it streams, and commits the image once everything is checked. Concurrent pulls of one
/// reference share one run; layers shared by different images are fetched once.
/// </summary>
public sealed class ImagePuller(ImageStore store, RegistryHosts hosts, RegistryClient client, CredentialsFile defaults, ILogger<ImagePuller> log)
{
    /// <summary>Layers fetched at once per pull: enough to overlap network and disk, few enough for a small node.</summary>
    private const int ParallelLayers = 3;

    private readonly ConcurrentDictionary<string, Lazy<Task<string>>> _pulls = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<Task<StoredLayer>>> _layers = new(StringComparer.Ordinal);

    /// <summary>
    /// Pulls and returns the image id. The pull itself runs to its end even when this caller gives
    /// up (cri-o keeps such work for the retry): a kubelet that timed out and asks again joins it.
    /// </summary>
    public async Task<string> PullAsync(ImageReference reference, Credentials? creds, CancellationToken ct)
    {
        var key = reference.ToString();
        Lazy<Task<string>>? mine = null;
        mine = _pulls.GetOrAdd(key, k => new Lazy<Task<string>>(async () =>
        {
            try
            {
                // Not handed to the thread pool: the pull runs on to its first wait on this thread,
                // then on its own, whatever this caller does (it never sees the caller's token).
                return await RunAsync(reference, creds).ConfigureAwait(false);
            }
            finally
            {
                _pulls.TryRemove(new KeyValuePair<string, Lazy<Task<string>>>(k, mine!));
            }
        }));
        return await mine.Value.WaitAsync(ct).ConfigureAwait(false);
    }

    private async Task<string> RunAsync(ImageReference reference, Credentials? creds)
    {
        var started = Stopwatch.GetTimestamp();
        var name = reference.ToString();
        using var cts = new CancellationTokenSource();
        try
        {
            // A present image is checked with one conditional request: the registry answers 304 when
            // the reference still names the top manifest this image was pulled from.
            var known = KnownTop(reference);
            var (endpoint, answer) = await FetchTopAsync(reference, creds, known?.Top, cts.Token).ConfigureAwait(false);
            if (answer is null)
            {
                if (Present(reference, known!.Value.Top, known.Value.Image.ManifestDigest) is { } same)
                {
                    ImagesLog.PullPresent(log, name, same.Id, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    return same.Id;
                }
                // Unchanged at the registry but changed here since (removed, collected): fetched whole.
                (endpoint, answer) = await FetchTopAsync(reference, creds, known: null, cts.Token).ConfigureAwait(false);
            }
            var top = answer!;
            var keep = new List<(string Digest, byte[] Body)> { (top.Digest, top.Body) };
            RegistryClient.Manifest manifestBlob = top;
            if (MediaTypes.IsIndex(top.MediaType))
            {
                var chosen = ImageIndex.Parse(top.Body).Pick();
                manifestBlob = await client.GetManifestAsync(endpoint, chosen.Digest, CredsFor(endpoint, creds), cts.Token).ConfigureAwait(false);
                if (!MediaTypes.IsManifest(manifestBlob.MediaType))
                    throw new ManifestException($"the index entry {chosen.Digest} is a {manifestBlob.MediaType}, not an image manifest");
                keep.Add((manifestBlob.Digest, manifestBlob.Body));
            }
            else if (manifestBlob.MediaType == MediaTypes.DockerSchema1)
            {
                throw new ManifestException("Docker schema 1 manifests are deprecated and not supported; push the image again with a current client");
            }
            if (Present(reference, top.Digest, manifestBlob.Digest) is { } present)
            {
                ImagesLog.PullPresent(log, name, present.Id, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                return present.Id;
            }
            var manifest = ImageManifest.Parse(manifestBlob.Body);
            var configBytes = await client.GetConfigAsync(endpoint, manifest.Config, RegistryClient.MaxConfigBytes, CredsFor(endpoint, creds), cts.Token).ConfigureAwait(false);
            var config = ImageConfig.Parse(configBytes);
            keep.Add((manifest.Config.Digest, configBytes));
            if (config.DiffIds.Count != manifest.Layers.Count)
                throw new ManifestException($"the manifest has {manifest.Layers.Count} layers but the config {config.DiffIds.Count} diff ids");
            var chains = ChainIds(config.DiffIds);

            using var pin = store.Pin([.. chains, .. keep.Select(k => k.Digest)]);
            long fetched = 0;
            using var gate = new SemaphoreSlim(ParallelLayers);
            var tasks = manifest.Layers.Select(async (layer, i) =>
            {
                await gate.WaitAsync(cts.Token).ConfigureAwait(false);
                try
                {
                    if (store.Layer(chains[i]) is not null)
                    {
                        ImagesLog.LayerPresent(log, name, layer.Digest);
                        return;
                    }
                    while (true)
                    {
                        var lazy = _layers.GetOrAdd(chains[i], c => new Lazy<Task<StoredLayer>>(() => Task.Factory.StartNew(
                            () =>
                            {
                                try
                                {
                                    return FetchLayer(name, endpoint, CredsFor(endpoint, creds), layer, config.DiffIds[i], c, ref fetched, cts.Token);
                                }
                                finally
                                {
                                    _layers.TryRemove(c, out _);
                                }
                            }, cts.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default)));
                        try
                        {
                            await lazy.Value.ConfigureAwait(false);
                            break;
                        }
                        catch (OperationCanceledException) when (!cts.IsCancellationRequested)
                        {
                            // Another pull fetched this layer and gave up on it (one of its own layers
                            // failed): this pull still wants it, and fetches it itself.
                        }
                    }
                }
                finally
                {
                    gate.Release();
                }
            }).ToList();
            try
            {
                await Task.WhenAll(tasks).ConfigureAwait(false);
            }
            catch
            {
                // One layer failed: stop the others now rather than let them run on.
                cts.Cancel();
                var first = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).FirstOrDefault(e => e is not OperationCanceledException);
                if (first is not null)
                    throw first;
                throw;
            }

            foreach (var (digest, body) in keep)
                store.WriteBlob(digest, body);
            var image = store.CommitImage(new StoredImage
            {
                Id = manifest.Config.Digest,
                ManifestDigest = manifestBlob.Digest,
                Layers = chains,
                Size = manifest.Config.Size + manifestBlob.Body.Length + manifest.Layers.Sum(l => l.Size),
                RepoTags = reference.TagReference is { } tag ? [tag] : [],
                RepoDigests = [reference.DigestReference(top.Digest)],
                Blobs = keep.Select(k => k.Digest).Distinct().ToArray(),
                Created = DateTimeOffset.UtcNow,
            });
            ImagesLog.PullDone(log, name, image.Id, Interlocked.Read(ref fetched), Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return image.Id;
        }
        catch (Exception e) when (e is RegistryException or ManifestException or LayerException or IOException)
        {
            // IOException: the store's own disk (full, read-only); what was written is removed or
            // collected, and the message says what the kernel said.
            ImagesLog.PullFailed(log, name, e.Message);
            throw e is ManifestNotFoundException
                ? new NotFoundException($"pulling {name}: {e.Message}")
                : new RuntimeFailureException($"pulling {name}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The stored image this pull would commit, unchanged: the same manifest (so the same config and
    /// layers), already under this reference's tag and digest, its layers and kept blobs all there.
    /// Then the pull is done with the manifest request alone, as containerd's is for a present image
    /// (it resolves the tag, finds every blob and snapshot present, and fetches nothing): no config
    /// request, no write of the store's index. Null when anything would change.
    /// </summary>
    private StoredImage? Present(ImageReference reference, string top, string manifest)
    {
        var image = store.Current.Images.FirstOrDefault(i => i.ManifestDigest == manifest);
        if (image is null
            || (reference.TagReference is { } tag && !image.RepoTags.Contains(tag))
            || !image.RepoDigests.Contains(reference.DigestReference(top))
            || image.Layers.Any(l => store.Layer(l) is null)
            || image.Blobs.Any(b => !File.Exists(store.BlobPath(b)))
            || !image.Blobs.Contains(top) || !image.Blobs.Contains(manifest) || !image.Blobs.Contains(image.Id))
            return null;
        return image;
    }

    /// <summary>
    /// The stored image this reference names and the top manifest (or index) digest it was pulled
    /// from under this repository's name, when that digest is known without doubt: the reference's
    /// own digest, or the image's only digest under this name (an image pulled by two tops of one
    /// name, an index and its manifest, leaves it unknown). Null when there is nothing to check.
    /// </summary>
    private (StoredImage Image, string Top)? KnownTop(ImageReference reference)
    {
        var images = store.Current.Images;
        if (reference.Digest is { } digest)
            return images.FirstOrDefault(i => i.RepoDigests.Contains(reference.DigestReference(digest))) is { } byDigest ? (byDigest, digest) : null;
        var image = images.FirstOrDefault(i => i.RepoTags.Contains(reference.TagReference!));
        var prefix = reference.Name + "@";
        var tops = image?.RepoDigests.Where(d => d.StartsWith(prefix, StringComparison.Ordinal)).Take(2).ToList();
        return tops is [var only] ? (image!, only[prefix.Length..]) : null;
    }

    /// <summary>
    /// The top manifest or index, from the first endpoint (mirrors first) that serves it; a null
    /// manifest when that endpoint answered that the reference still names <paramref name="known"/>.
    /// </summary>
    private async Task<(RegistryEndpoint Endpoint, RegistryClient.Manifest? Top)> FetchTopAsync(ImageReference reference, Credentials? creds, string? known, CancellationToken ct)
    {
        var endpoints = hosts.Resolve(reference);
        var failures = new List<string>();
        var allNotFound = true;
        foreach (var endpoint in endpoints)
        {
            ImagesLog.PullStarted(log, reference.ToString(), endpoint.ToString());
            try
            {
                var top = await client.GetManifestIfChangedAsync(endpoint, reference.Digest ?? reference.Tag!, known, CredsFor(endpoint, creds), ct).ConfigureAwait(false);
                return (endpoint, top);
            }
            catch (RegistryException e)
            {
                allNotFound &= e is ManifestNotFoundException;
                failures.Add(e.Message);
                if (endpoint != endpoints[^1])
                    ImagesLog.EndpointFailed(log, reference.ToString(), endpoint.ToString(), e.Message);
            }
        }
        var message = string.Join("; ", failures);
        throw allNotFound ? new ManifestNotFoundException(message) : new RegistryException(message);
    }

    private Credentials? CredsFor(RegistryEndpoint endpoint, Credentials? given) => given ?? defaults.For(endpoint.Host);

    private StoredLayer FetchLayer(string name, RegistryEndpoint endpoint, Credentials? creds, Descriptor layer, string diffId, string chainId, ref long fetched, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var (snapshot, folder) = store.NewSnapshot();
        try
        {
            using var blob = new BlobStream(client, endpoint, layer, creds, ct);
            var stats = LayerUnpacker.Unpack(blob, folder);
            if (stats.CompressedDigest != layer.Digest)
                throw new LayerException($"layer {layer.Digest}: the content's digest is {stats.CompressedDigest}; refused");
            if (stats.CompressedSize != layer.Size)
                throw new LayerException($"layer {layer.Digest}: {stats.CompressedSize} bytes, the manifest says {layer.Size}; refused");
            if (stats.DiffId != diffId)
                throw new LayerException($"layer {layer.Digest}: its uncompressed digest is {stats.DiffId}, the config's diff id is {diffId}; refused");
            var committed = store.CommitLayer(new StoredLayer
            {
                ChainId = chainId,
                DiffId = diffId,
                Snapshot = snapshot,
                Bytes = stats.Bytes,
                Inodes = stats.Inodes,
            });
            Interlocked.Add(ref fetched, stats.CompressedSize);
            ImagesLog.LayerPulled(log, name, layer.Digest, stats.CompressedSize, Stopwatch.GetElapsedTime(started).TotalMilliseconds,
                blob.Resumes > 0 ? $" (resumed {blob.Resumes}x)" : "");
            return committed;
        }
        catch (Exception e)
        {
            store.DiscardSnapshot(snapshot);
            if (e is IOException && e is not LayerException)
                throw new LayerException($"layer {layer.Digest}: {e.Message}", e);
            throw;
        }
    }

    /// <summary>image-spec config.md: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).</summary>
    public static string[] ChainIds(IReadOnlyList<string> diffIds)
    {
        var chains = new string[diffIds.Count];
        for (var i = 0; i < diffIds.Count; i++)
        {
            chains[i] = i == 0 ? diffIds[0]
                : "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes($"{chains[i - 1]} {diffIds[i]}")));
        }
        return chains;
    }
}
