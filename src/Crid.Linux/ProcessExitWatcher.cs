using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// Tells when watched processes exit, whoever their parent is: one pidfd per process (pidfd_open(2):
/// it becomes readable when the process terminates, zombie or reaped), waited for on the
/// <see cref="FdPoller"/>'s one epoll thread, so a thousand pods cost no thread of their own and no
/// polling. The callback runs on the thread pool. Nothing is reaped here: a child stays a zombie for
/// whoever kills it (InfraProcess.Kill reaps it).
/// </summary>
public sealed class ProcessExitWatcher : IDisposable
{
    private readonly FdPoller _poller;
    private readonly Dictionary<long, Entry> _watches = [];
    private long _next;
    private bool _disposed;

    public ProcessExitWatcher()
        : this(FdPoller.Shared)
    {
    }

    internal ProcessExitWatcher(FdPoller poller) => _poller = poller;

    /// <summary>Processes watched right now.</summary>
    public int Count
    {
        get
        {
            lock (_watches)
            {
                return _watches.Count;
            }
        }
    }

    /// <summary>
    /// Calls <paramref name="onExit"/> once <paramref name="pid"/> has exited. Returns the watch (dispose
    /// it to stop watching), or null when the process is already gone (no callback then).
    /// </summary>
    public IDisposable? Watch(int pid, Action onExit)
    {
        var pidfd = Interop.PidfdOpen(pid);
        if (pidfd.IsInvalid)
        {
            var error = Interop.Error("pidfd_open", $"/proc/{pid}");
            pidfd.Dispose();
            return error.Errno == ESRCH ? null : throw error;
        }

        Entry watch;
        lock (_watches)
        {
            if (_disposed)
            {
                pidfd.Dispose();
                throw new ObjectDisposedException(nameof(ProcessExitWatcher));
            }

            watch = new Entry(this, ++_next, pidfd, onExit);
            _watches[watch.Key] = watch;
        }

        var exited = _poller.WaitAsync(pidfd, write: false, watch.Cancel.Token);
        if (exited.IsFaulted)
        {
            // epoll_ctl refused the pidfd: nothing waits, so nothing will close it.
            watch.Exited(exited);
            exited.GetAwaiter().GetResult();
        }

        exited.ContinueWith(static (t, state) => ((Entry)state!).Exited(t), watch, CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return watch;
    }

    public void Dispose()
    {
        Entry[] watches;
        lock (_watches)
        {
            _disposed = true;
            watches = [.. _watches.Values];
        }

        foreach (var w in watches)
        {
            w.Dispose();
        }
    }

    private sealed class Entry(ProcessExitWatcher owner, long key, SafeFd pidfd, Action onExit) : IDisposable
    {
        public long Key => key;

        public CancellationTokenSource Cancel { get; } = new();

        /// <summary>The poller's wait ended (on the thread pool: FdPoller completes asynchronously).</summary>
        public void Exited(Task wait)
        {
            bool mine;
            lock (owner._watches)
            {
                mine = owner._watches.Remove(key);
            }

            // Cancel is not disposed: a Dispose may still be inside Cancel() on another thread.
            pidfd.Dispose();

            // Disposed meanwhile (canceled): the owner no longer wants to hear of it.
            if (mine && wait.IsCompletedSuccessfully)
            {
                onExit();
            }
        }

        public void Dispose()
        {
            bool mine;
            lock (owner._watches)
            {
                mine = owner._watches.Remove(key);
            }

            if (mine)
            {
                // The wait ends canceled and Exited closes the pidfd.
                Cancel.Cancel();
            }
        }
    }
}
