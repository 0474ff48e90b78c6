using System.Text;
using Microsoft.Win32.SafeHandles;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>One inotify(7) event: what happened to which name in the watched directory.</summary>
public readonly record struct InotifyEvent(uint Mask, string Name)
{
    /// <summary>The kernel's queue overflowed: events were lost, rescan the directory.</summary>
    public bool Overflowed => (Mask & Inotify.QueueOverflow) != 0;
}

/// <summary>
/// An inotify instance watching directories, read asynchronously through the <see cref="FdPoller"/>:
/// no thread of its own, none from the pool while nothing happens.
/// </summary>
public sealed class Inotify : IDisposable
{
    public const uint CloseWrite = 0x8, MovedTo = 0x80, Create = 0x100, QueueOverflow = 0x4000;

    public const uint Modify = 0x2, Attrib = 0x4, MovedFrom = 0x40, Delete = 0x200, DeleteSelf = 0x400, MoveSelf = 0x800, Ignored = 0x8000;

    private const int IN_NONBLOCK = 0x800, IN_CLOEXEC = 0x80000;

    private readonly SafeFileHandle _fd;
    private readonly byte[] _buffer = new byte[64 * 1024];

    public Inotify()
    {
        _fd = new SafeFileHandle(Interop.CheckIo(Interop.InotifyInit1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1"), ownsHandle: true);
    }

    /// <summary>Watches the names in <paramref name="directory"/> for the events of <paramref name="mask"/>.</summary>
    public void Watch(string directory, uint mask)
    {
        Interop.CheckIo(Interop.InotifyAddWatch(_fd, directory, mask), "inotify_add_watch", directory);
    }

    /// <summary>Waits for events and returns every one queued (at least one).</summary>
    public async ValueTask<IReadOnlyList<InotifyEvent>> ReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var events = TryRead();
            if (events is not null)
            {
                return events;
            }

            await FdPoller.Shared.WaitAsync(_fd, write: false, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Reads every event queued, without waiting: true when there was one. The kernel queues an event
    /// as the change is made, so "none" means nothing changed since the last read. <paramref name="lost"/>:
    /// events were lost (overflow, a failed read) or a watched folder itself went, with its watch.
    /// </summary>
    public bool Drain(out bool lost)
    {
        lost = false;
        var any = false;
        try
        {
            while (TryRead() is { } events)
            {
                any = true;
                foreach (var e in events)
                {
                    lost |= (e.Mask & (QueueOverflow | Ignored | DeleteSelf | MoveSelf)) != 0;
                }
            }
        }
        catch (SyscallException)
        {
            lost = true;
        }

        return any || lost;
    }

    public void Dispose() => _fd.Dispose();

    private List<InotifyEvent>? TryRead()
    {
        long n;
        do
        {
            n = Interop.Read(_fd, _buffer);
        }
        while (n < 0 && Interop.LastErrno == EINTR);

        if (n < 0)
        {
            var error = Interop.Error("read", "(inotify)");
            return error.Errno == EAGAIN ? null : throw error;
        }

        // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; } (NUL-padded).
        var events = new List<InotifyEvent>();
        for (int off = 0; off + 16 <= n;)
        {
            uint mask = BitConverter.ToUInt32(_buffer, off + 4);
            int len = (int)BitConverter.ToUInt32(_buffer, off + 12);
            var name = _buffer.AsSpan(off + 16, len);
            int nul = name.IndexOf((byte)0);
            events.Add(new InotifyEvent(mask, Encoding.UTF8.GetString(nul < 0 ? name : name[..nul])));
            off += 16 + len;
        }

        return events;
    }
}
