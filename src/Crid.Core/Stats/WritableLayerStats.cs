using System.Collections.Concurrent;
using Crid.Linux;

namespace Crid.Core.Stats;

/// <summary>A container's writable layer at one moment.</summary>
/// <param name="Timestamp">When the walk that measured it ended, Unix nanoseconds.</param>
/// <param name="MountPoint">The filesystem holding the layer (CRI's fs_id).</param>
/// <param name="Truncated">The walk hit its bound: the figures are a lower bound.</param>
public sealed record LayerUsage(long Timestamp, string MountPoint, ulong UsedBytes, ulong InodesUsed, bool Truncated);

/// <summary>
/// The bytes and inodes of containers' writable layers (the overlay upper folders), measured by a
/// walk of the folder (<see cref="DirectoryUsage"/>: by descriptor, one filesystem, bounded) on a
/// walker thread of its own, never a thread-pool thread. A walk costs a statx per file, so a measurement
/// is reused for <see cref="MaxAge"/> (its timestamp says when it was taken), concurrent callers for
/// one layer share one walk, and at most one walk runs at a time for the whole daemon: stats of a
/// hundred containers cost a hundred walks one after another, not a hundred threads at once.
/// </summary>
/// <remarks>
/// With <c>refreshAfter</c> shorter than <c>maxAge</c>, a measurement older than refreshAfter is
/// still given (its timestamp says its age) while a new walk runs in the background, as
/// containerd gives the snapshot usage its background syncer measured: a caller waits for a walk
/// only for a layer never measured, or one whose measurement is older than maxAge. So a
/// ListContainerStats every 10 s (kubelet's period) gets the figures the walks its previous call
/// started measured, never older than maxAge, and does not wait for 1,000 walks (194 ms in the
/// bench's first call) on every call.
/// </remarks>
public sealed class WritableLayerStats(TimeSpan maxAge, int maxEntries = WritableLayerStats.DefaultMaxEntries, int maxDepth = WritableLayerStats.DefaultMaxDepth, Func<long>? clock = null,
    TimeSpan? refreshAfter = null)
{
    /// <summary>Entries one walk looks at: a second or so of statx calls.</summary>
    public const int DefaultMaxEntries = 500_000;

    /// <summary>Folder levels one walk enters; each holds a descriptor open while below it.</summary>
    public const int DefaultMaxDepth = 128;

    private readonly Func<long> _clock = clock ?? UnixClock.Now;
    private readonly ConcurrentDictionary<string, Lazy<Task<LayerUsage?>>> _walks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, LayerUsage> _last = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string Key, string Dir, TaskCompletionSource<LayerUsage?> Done)> _queue = new();
    private int _walking;

    /// <summary>
    /// The mount point of each device a walk started on. Finding it reads /proc/self/mountinfo,
    /// which on a node with 1,000 containers has thousands of lines (an overlay each, the pods'
    /// pins and /dev/shm): read once per layer, a cold ListContainerStats over 1,000 containers
    /// took 25 s in the bench. Every upper folder is on the state folder's filesystem, so it is
    /// read once per device instead.
    /// </summary>
    private readonly ConcurrentDictionary<(uint, uint), string> _mounts = new();

    /// <summary>The oldest measurement given.</summary>
    public TimeSpan MaxAge { get; } = maxAge;

    /// <summary>The age past which a measurement given starts a new walk in the background (at most <see cref="MaxAge"/>).</summary>
    public TimeSpan RefreshAfter { get; } = refreshAfter is { } r && r < maxAge ? r : maxAge;

    /// <summary>The usage of <paramref name="dir"/>, known as <paramref name="key"/>; null when the folder is not there (any more).</summary>
    public Task<LayerUsage?> MeasureAsync(string key, string dir)
    {
        if (_last.TryGetValue(key, out var last))
        {
            var age = _clock() - last.Timestamp;
            if (age < RefreshAfter.Ticks * 100)
                return Task.FromResult<LayerUsage?>(last);
            if (age < MaxAge.Ticks * 100)
            {
                _ = Walk(key, dir);
                return Task.FromResult<LayerUsage?>(last);
            }
        }
        return Walk(key, dir);
    }

    /// <summary>The walk of the layer under way, or a new one queued.</summary>
    private Task<LayerUsage?> Walk(string key, string dir) =>
        _walks.GetOrAdd(key, _ => new Lazy<Task<LayerUsage?>>(() => WalkAsync(key, dir))).Value;

    /// <summary>Drops what is kept of a removed container's layer.</summary>
    public void Forget(string key) => _last.TryRemove(key, out _);

    /// <summary>
    /// Queues the walk for the one walker thread, started when there is none and ending when the
    /// queue is empty: a ListContainerStats over 1,000 containers asks for 1,000 walks at once,
    /// and they run back to back on one thread (a thread each, one after another, cost two
    /// wake-ups per layer, milliseconds apiece on a busy node).
    /// </summary>
    private Task<LayerUsage?> WalkAsync(string key, string dir)
    {
        var done = new TaskCompletionSource<LayerUsage?>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Enqueue((key, dir, done));
        if (Interlocked.CompareExchange(ref _walking, 1, 0) == 0)
            Task.Factory.StartNew(Drain, CancellationToken.None, TaskCreationOptions.LongRunning | TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);
        return done.Task;
    }

    private void Drain()
    {
        while (true)
        {
            while (_queue.TryDequeue(out var item))
            {
                try
                {
                    var usage = Measure(item.Dir);
                    if (usage is not null)
                        _last[item.Key] = usage;
                    else
                        _last.TryRemove(item.Key, out _);
                    item.Done.SetResult(usage);
                }
                catch (Exception e)
                {
                    item.Done.SetException(e);
                }
                finally
                {
                    _walks.TryRemove(item.Key, out _);
                }
            }
            Volatile.Write(ref _walking, 0);
            // A walk queued after the last dequeue, before the flag was cleared, found it set and
            // started no walker: this one goes on unless another has started since.
            if (_queue.IsEmpty || Interlocked.CompareExchange(ref _walking, 1, 0) != 0)
                return;
        }
    }

    private LayerUsage? Measure(string dir)
    {
        DiskUsage usage;
        try
        {
            usage = DirectoryUsage.Measure(dir, maxEntries, maxDepth);
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
        var mount = _mounts.GetOrAdd(usage.Device, _ => FileSystemUsage.Of(dir).MountPoint);
        return new LayerUsage(_clock(), mount, usage.Bytes, usage.Inodes, usage.Truncated);
    }
}
