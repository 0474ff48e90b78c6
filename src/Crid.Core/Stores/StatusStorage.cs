using Crid.Core.Storage;

namespace Crid.Core.Stores;

/// <summary>
/// The mutable part of a stored object, modelled on containerd's container StatusStorage: readers get
/// the current status as a value they may keep (<typeparamref name="TStatus"/> must be immutable, a
/// record whose members are immutable too, so the reference *is* a copy nobody can change), and
/// writers change it only through <see cref="Update"/>, which runs under this object's own lock,
/// writes the new status to its file atomically and only then makes it current. A status is never
/// seen half-changed, and the file never holds one that was not current.
/// </summary>
/// <remarks>
/// Intended use: an object (a sandbox, a container) holds its immutable metadata as plain init-only
/// properties and one <c>StatusStorage&lt;ItsStatus&gt;</c>. Lifecycle calls that take long (Stop,
/// Remove, network teardown) serialise on the object's own operation lock and publish each step
/// with <c>Update(s =&gt; s with { ... })</c>; background watchers (an exit watch) call Update too,
/// without that lock, since the status lock is all a status change needs.
/// </remarks>
public sealed class StatusStorage<TStatus> where TStatus : class
{
    private readonly Lock _lock = new();
    private readonly string? _path;
    private readonly Func<TStatus, byte[]> _serialize;
    private readonly Func<TStatus, bool> _durable;
    private TStatus _status;

    /// <param name="path">the status file; null keeps the status in memory only.</param>
    /// <param name="durable">fsync each write (see <see cref="AtomicFiles"/> for when that is worth it).</param>
    public StatusStorage(TStatus initial, string? path, Func<TStatus, byte[]> serialize, bool durable)
        : this(initial, path, serialize, _ => durable)
    {
    }

    /// <param name="durableWhen">which statuses are fsynced when written (the others are written atomically only).</param>
    public StatusStorage(TStatus initial, string? path, Func<TStatus, byte[]> serialize, Func<TStatus, bool> durableWhen)
    {
        _status = initial;
        _path = path;
        _serialize = serialize;
        _durable = durableWhen;
    }

    /// <summary>A status kept in memory only (tests, objects whose status is not persisted).</summary>
    public static StatusStorage<TStatus> InMemory(TStatus initial) => new(initial, null, _ => [], durable: false);

    /// <summary>The current status: an immutable snapshot.</summary>
    public TStatus Get()
    {
        lock (_lock)
            return _status;
    }

    /// <summary>
    /// Replaces the status by <paramref name="change"/>(current), persisted first. If
    /// <paramref name="change"/> throws, or the write fails, the status stays as it was and the
    /// exception propagates. Returning the same instance changes and writes nothing.
    /// </summary>
    public TStatus Update(Func<TStatus, TStatus> change)
    {
        lock (_lock)
        {
            var next = change(_status);
            if (ReferenceEquals(next, _status))
                return next;
            Persist(next);
            _status = next;
            return next;
        }
    }

    /// <summary>Writes the current status to its file (the first write of a new object).</summary>
    public void Save()
    {
        lock (_lock)
            Persist(_status);
    }

    /// <summary>Deletes the status file; the in-memory status stays readable.</summary>
    public void Delete()
    {
        if (_path is not null)
            File.Delete(_path);
    }

    private void Persist(TStatus status)
    {
        if (_path is not null)
            AtomicFiles.Write(_path, _serialize(status), AtomicFiles.PrivateFile, _durable(status));
    }
}
