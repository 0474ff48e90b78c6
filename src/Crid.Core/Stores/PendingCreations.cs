namespace Crid.Core.Stores;

/// <summary>
/// Creations (RunPodSandbox, later CreateContainer) that keep going when the client gives up, and
/// whose result waits for the client's retry: cri-o's internal/resourcestore. kubelet calls
/// RunPodSandbox with a deadline (4 minutes by default) and, when it passes, calls again with the
/// same config. A creation cut off half-way would only have to be redone, and one that then failed
/// with AlreadyExists (its name is held by the first) would leave kubelet stuck; so the work runs to
/// its end detached from the call, and a second call for the same name with an equal request joins
/// the creation in flight, or collects the result that finished unclaimed.
/// </summary>
/// <remarks>
/// A result is handed out once: after a caller got it, the entry is gone and a later call for the
/// same name meets the name registrar (AlreadyExists), as any duplicate does. A failed creation
/// is forgotten at once (it rolled itself back). A result never claimed stays until
/// <see cref="Forget"/> (call it where the object is removed), so the entries never outnumber
/// the live objects. A request that differs from the one in flight is not a retry: it does not
/// join, and the creation it starts meets the registrar like any duplicate.
/// </remarks>
public sealed class PendingCreations<T> where T : class
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    private sealed class Entry(object request)
    {
        public object Request { get; } = request;
        public required Task<T> Work { get; init; }
    }

    /// <summary>Creations in flight or finished and not yet claimed.</summary>
    public int Count
    {
        get
        {
            lock (_entries)
                return _entries.Count;
        }
    }

    /// <summary>
    /// Runs <paramref name="create"/> for <paramref name="name"/>, or joins the creation of that name
    /// whose request equals <paramref name="request"/>; waits for it with <paramref name="callToken"/>.
    /// </summary>
    /// <param name="request">compared with <see cref="object.Equals(object)"/> (protobuf messages compare by value).</param>
    /// <param name="create">the work; it must not observe <paramref name="callToken"/>.</param>
    /// <exception cref="OperationCanceledException">the caller gave up; the work goes on and is kept.</exception>
    public async Task<T> RunAsync(string name, object request, Func<Task<T>> create, CancellationToken callToken)
    {
        Entry entry;
        Task<Task<T>>? start = null;
        lock (_entries)
        {
            if (!_entries.TryGetValue(name, out entry!) || !entry.Request.Equals(request))
            {
                // Made here, started below, outside this lock, on the caller's thread: its first
                // part runs there until it first waits, with no hop to another thread (the caller
                // would only wait for it), and from then on it does not depend on the caller.
                start = new Task<Task<T>>(create, CancellationToken.None, TaskCreationOptions.DenyChildAttach);
                entry = new Entry(request) { Work = start.Unwrap() };
                // A differing request neither joins nor replaces the entry in flight: its own
                // creation fails on the name registrar, and the retry of the first still finds it.
                if (!_entries.ContainsKey(name))
                    _entries[name] = entry;
                var started = entry;
                _ = entry.Work.ContinueWith(t =>
                {
                    if (!t.IsCompletedSuccessfully)
                        Remove(name, started);
                }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
        start?.RunSynchronously(TaskScheduler.Default);
        var result = await entry.Work.WaitAsync(callToken).ConfigureAwait(false);
        Remove(name, entry);
        return result;
    }

    /// <summary>Drops an unclaimed result for <paramref name="name"/> (its object is being removed).</summary>
    public void Forget(string name)
    {
        lock (_entries)
        {
            if (_entries.TryGetValue(name, out var e) && e.Work is { IsCompleted: true })
                _entries.Remove(name);
        }
    }

    private void Remove(string name, Entry entry)
    {
        lock (_entries)
        {
            if (_entries.TryGetValue(name, out var current) && ReferenceEquals(current, entry))
                _entries.Remove(name);
        }
    }
}
