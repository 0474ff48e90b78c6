using System.Runtime.InteropServices;

namespace Crid.Linux;

/// <summary>
/// Tells when watched processes exit, whoever their parent is: one pidfd per process (pidfd_open(2):
/// it becomes readable when the process terminates, zombie or reaped), all in one epoll set served by
/// one dedicated thread, so a thousand pods cost one thread and no polling. The callback runs on the
/// thread pool, never on the watcher's thread. Nothing is reaped here: a child stays a zombie for
/// whoever kills it (InfraProcess.Kill reaps it).
/// </summary>
public sealed unsafe class ProcessExitWatcher : IDisposable
{
    private readonly SafeFd _epoll;
    private readonly SafeFd _wake;
    private readonly Dictionary<long, Entry> _watches = [];
    private readonly Thread _thread;
    private long _next = 1;
    private volatile bool _disposed;

    public ProcessExitWatcher()
    {
        _epoll = SafeFd.FromResult(Interop.EpollCreate1(Interop.EPOLL_CLOEXEC));
        if (_epoll.IsInvalid)
            throw Errors.LastIo("epoll_create1", "");
        _wake = SafeFd.FromResult(Interop.Eventfd(0, Interop.EFD_CLOEXEC));
        if (_wake.IsInvalid)
            throw Errors.LastIo("eventfd", "");
        Add(_wake, 0);
        _thread = new Thread(Loop) { IsBackground = true, Name = "crid-exit-watch" };
        _thread.Start();
    }

    /// <summary>
    /// Calls <paramref name="onExit"/> once <paramref name="pid"/> has exited. Returns the watch (dispose
    /// it to stop watching), or null when the process is already gone (no callback then).
    /// </summary>
    public IDisposable? Watch(int pid, Action onExit)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var fd = SafeFd.FromResult(Interop.PidfdOpen(pid, 0));
        if (fd.IsInvalid)
        {
            var errno = Marshal.GetLastPInvokeError();
            fd.Dispose();
            if (errno == Interop.ESRCH)
                return null;
            throw new IOException($"pidfd_open {pid}: {Interop.ErrnoName(errno)}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }

        Entry watch;
        lock (_watches)
        {
            watch = new Entry(this, _next++, fd, onExit);
            _watches[watch.Key] = watch;
        }

        try
        {
            Add(fd, watch.Key);
        }
        catch
        {
            watch.Dispose();
            throw;
        }

        return watch;
    }

    /// <summary>Processes watched right now.</summary>
    public int Count
    {
        get
        {
            lock (_watches)
                return _watches.Count;
        }
    }

    private void Add(SafeFd fd, long key)
    {
        byte* ev = stackalloc byte[16];
        *(uint*)ev = Interop.EPOLLIN;
        *(long*)(ev + Interop.EpollDataOffset) = key;
        if (Interop.EpollCtl(_epoll, Interop.EPOLL_CTL_ADD, fd, ev) != 0)
            throw Errors.LastIo("epoll_ctl", "pidfd");
    }

    private void Loop()
    {
        const int Max = 64;
        byte* events = stackalloc byte[Max * 16];
        while (!_disposed)
        {
            int n = Interop.EpollWait(_epoll, events, Max, -1);
            if (n < 0)
            {
                if (Marshal.GetLastPInvokeError() == Interop.EINTR)
                    continue;
                return;
            }

            for (int i = 0; i < n; i++)
            {
                long key = *(long*)(events + (i * Interop.EpollEventSize) + Interop.EpollDataOffset);
                if (key == 0)
                    continue;
                Entry? watch;
                lock (_watches)
                {
                    if (_watches.Remove(key, out watch))
                        watch.Close();
                }

                // Disposed meanwhile: the owner no longer wants to hear of it.
                if (watch is not null)
                    ThreadPool.UnsafeQueueUserWorkItem(static w => w.Fire(), watch, preferLocal: false);
            }
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        ulong one = 1;
        Interop.Write(_wake, (byte*)&one, sizeof(ulong));
        _thread.Join();
        lock (_watches)
        {
            foreach (var w in _watches.Values)
                w.Close();
            _watches.Clear();
        }

        _wake.Dispose();
        _epoll.Dispose();
    }

    private sealed class Entry(ProcessExitWatcher owner, long key, SafeFd fd, Action onExit) : IDisposable
    {
        public long Key => key;

        // Closing a pidfd removes it from the epoll set: no EPOLL_CTL_DEL needed.
        public void Close() => fd.Dispose();

        public void Fire() => onExit();

        public void Dispose()
        {
            lock (owner._watches)
            {
                if (owner._watches.Remove(key))
                    Close();
            }
        }
    }
}
