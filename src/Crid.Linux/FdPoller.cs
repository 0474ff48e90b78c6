using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// One epoll instance and one dedicated thread that turn "this fd is readable" into a completed
/// Task, so waiting for a pipe, a pty, an inotify queue or a pidfd never holds a thread-pool
/// thread. .NET's own event loop only serves sockets; everything else the daemon waits on (a child's
/// exit, an infra process's, a terminal, a directory) comes through here.
/// </summary>
/// <remarks>
/// Each wait is a one-shot registration (EPOLLONESHOT) removed before its task completes, so a
/// caller may wait on the same fd again at once. At most one wait per fd number at a time: a
/// second one gets EEXIST (a pty read and write wait use two dup'd fds).
/// </remarks>
internal sealed unsafe class FdPoller
{
    private static readonly Lazy<FdPoller> SharedInstance = new(() => new FdPoller(), LazyThreadSafetyMode.ExecutionAndPublication);

    // Never disposed: the poller lives as long as the process, so its number may be used bare.
    private readonly SafeFd _epoll;
    private readonly int _epfd;
    private readonly ConcurrentDictionary<ulong, Waiter> _waiters = new();
    private ulong _nextToken;

    private FdPoller()
    {
        _epoll = SafeFd.Check(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
        _epfd = (int)_epoll.DangerousGetHandle();

        // A process-lifetime background thread: never a pool thread, never joined.
        new Thread(Loop) { IsBackground = true, Name = "crid-fd-poller" }.Start();
    }

    public static FdPoller Shared => SharedInstance.Value;

    /// <summary>Completes when <paramref name="fd"/> is readable (or writable), hung up or in error.</summary>
    public Task WaitAsync(SafeHandle fd, bool write, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        bool added = false;
        fd.DangerousAddRef(ref added);
        var waiter = new Waiter(fd, (int)fd.DangerousGetHandle());
        ulong token = Interlocked.Increment(ref _nextToken);
        _waiters[token] = waiter;

        epoll_event ev = default;
        ev.events = (write ? EPOLLOUT : EPOLLIN) | EPOLLONESHOT | EPOLLRDHUP;
        ev.data.u64 = token;
        if (epoll_ctl(_epfd, EPOLL_CTL_ADD, waiter.Fd, &ev) != 0)
        {
            var error = Interop.Error("epoll_ctl");
            _waiters.TryRemove(token, out _);
            fd.DangerousRelease();

            // epoll(7): regular files and directories cannot be polled; they are always ready.
            return error.Errno == EPERM ? Task.CompletedTask : Task.FromException(error);
        }

        if (cancellationToken.CanBeCanceled)
        {
            waiter.Registration = cancellationToken.UnsafeRegister(static (state, ct) =>
            {
                var (poller, token) = ((FdPoller, ulong))state!;
                poller.Complete(token, ct);
            }, (this, token));
            if (waiter.Completion.Task.IsCompleted)
            {
                waiter.Registration.Dispose(); // completed before the registration existed
            }
        }

        return waiter.Completion.Task;
    }

    private void Complete(ulong token, CancellationToken canceled)
    {
        if (!_waiters.TryRemove(token, out var waiter))
        {
            return;
        }

        // Removed before the task completes, so the continuation may register the fd again.
        epoll_ctl(_epfd, EPOLL_CTL_DEL, waiter.Fd, null);
        waiter.Handle.DangerousRelease();
        waiter.Registration.Dispose();
        if (canceled.IsCancellationRequested)
        {
            waiter.Completion.TrySetCanceled(canceled);
        }
        else
        {
            waiter.Completion.TrySetResult();
        }
    }

    private void Loop()
    {
        const int Max = 64;
        var events = new epoll_event[Max];
        while (true)
        {
            int n;
            fixed (epoll_event* p = events)
            {
                n = epoll_wait(_epfd, p, Max, -1);
            }

            if (n < 0)
            {
                // EINTR only: a signal for another thread of the daemon.
                continue;
            }

            for (int i = 0; i < n; i++)
            {
                Complete(events[i].data.u64, CancellationToken.None);
            }
        }
    }

    private sealed class Waiter(SafeHandle handle, int fd)
    {
        public SafeHandle Handle { get; } = handle;

        public int Fd { get; } = fd;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public CancellationTokenRegistration Registration { get; set; }
    }
}
