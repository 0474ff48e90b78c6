using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Runtime.V1;

namespace Crid.Core.Events;

/// <summary>
/// The one fan-out of CRI container events (GetContainerEvents): every subscriber gets every event
/// published after it subscribed, all in the one order in which they were published.
/// </summary>
/// <remarks>
/// <para>
/// Publishing never waits for a subscriber: each has a bounded queue of its own
/// (<see cref="QueueCapacity"/> events), and <see cref="Publish"/> only appends to the queues.
/// </para>
/// <para>
/// <b>Overflow.</b> A subscriber whose queue is full when an event arrives has fallen
/// <see cref="QueueCapacity"/> events behind and is cut off, rather than skipping events silently
/// or making the runtime wait: it is unsubscribed, still receives every event that was queued
/// for it (so it knows exactly up to where it is complete), and then its reading ends with
/// <see cref="EventSubscriberOverflowException"/>. The server turns that into the stream's end
/// with RESOURCE_EXHAUSTED; kubelet's evented PLEG then relists and subscribes again, the recovery
/// it already has for a broken stream. Other subscribers never notice.
/// </para>
/// </remarks>
public sealed class ContainerEventBus
{
    /// <summary>Events a subscriber may fall behind before it is cut off: a burst of a hundred pods' lifecycles.</summary>
    public const int DefaultQueueCapacity = 4096;

    private readonly Lock _lock = new();
    private readonly List<EventSubscription> _subscribers = [];
    private long _published;

    public ContainerEventBus(int queueCapacity = DefaultQueueCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(queueCapacity, 1);
        QueueCapacity = queueCapacity;
    }

    public int QueueCapacity { get; }

    /// <summary>Subscribers currently receiving.</summary>
    public int SubscriberCount
    {
        get
        {
            lock (_lock)
                return _subscribers.Count;
        }
    }

    /// <summary>Events published since the daemon started.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Subscribers cut off for falling behind since the daemon started.</summary>
    public long Overflows => Interlocked.Read(ref _overflows);

    private long _overflows;

    /// <summary>A new subscriber, receiving every event published from now on; dispose it to leave.</summary>
    public EventSubscription Subscribe()
    {
        var subscription = new EventSubscription(this, QueueCapacity);
        lock (_lock)
        {
            if (!_closed)
            {
                _subscribers.Add(subscription);
                return subscription;
            }
        }
        subscription.End();
        return subscription;
    }

    /// <summary>
    /// Hands <paramref name="e"/> to every subscriber. Never blocks on a subscriber: the publishers
    /// are the runtime's lifecycle calls and its exit watcher. The message must not be changed afterwards.
    /// </summary>
    public void Publish(ContainerEventResponse e)
    {
        ArgumentNullException.ThrowIfNull(e);
        List<EventSubscription>? overflowed = null;
        // One lock over the whole fan-out: two events published at once reach every queue in the
        // same order. Appending to a bounded channel is a few dozen nanoseconds.
        lock (_lock)
        {
            Interlocked.Increment(ref _published);
            foreach (var s in _subscribers)
            {
                if (!s.Offer(e))
                    (overflowed ??= []).Add(s);
            }
            if (overflowed is not null)
            {
                foreach (var s in overflowed)
                    _subscribers.Remove(s);
            }
        }
        if (overflowed is null)
            return;
        foreach (var s in overflowed)
        {
            Interlocked.Increment(ref _overflows);
            s.CutOff();
        }
    }

    /// <summary>
    /// Ends every subscription (the daemon is stopping): each reader gets what was queued, then its
    /// enumeration ends, so a stream never holds the shutdown up. Later subscribers are ended at once.
    /// </summary>
    public void Close()
    {
        EventSubscription[] all;
        lock (_lock)
        {
            _closed = true;
            all = [.. _subscribers];
            _subscribers.Clear();
        }
        foreach (var s in all)
            s.End();
    }

    private bool _closed;

    internal void Remove(EventSubscription s)
    {
        lock (_lock)
            _subscribers.Remove(s);
    }
}

/// <summary>One subscriber's queue of events.</summary>
public sealed class EventSubscription : IDisposable
{
    private readonly ContainerEventBus _bus;
    private readonly Channel<ContainerEventResponse> _queue;
    private readonly int _capacity;

    internal EventSubscription(ContainerEventBus bus, int capacity)
    {
        _bus = bus;
        _capacity = capacity;
        _queue = Channel.CreateBounded<ContainerEventResponse>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
            AllowSynchronousContinuations = false,
        });
    }

    /// <summary>Events queued and not yet read.</summary>
    public int Pending => _queue.Reader.Count;

    /// <summary>True once this subscriber was cut off for falling behind.</summary>
    public bool Overflowed { get; private set; }

    /// <summary>
    /// The events, in publication order, until the subscription is disposed (the enumeration
    /// ends) or <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    /// <exception cref="EventSubscriberOverflowException">after the last queued event, when the subscriber fell behind.</exception>
    public async IAsyncEnumerable<ContainerEventResponse> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (await _queue.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (_queue.Reader.TryRead(out var e))
                yield return e;
        }
    }

    /// <summary>Leaves the bus; what was queued is dropped and a reader's enumeration ends.</summary>
    public void Dispose()
    {
        _bus.Remove(this);
        _queue.Writer.TryComplete();
    }

    /// <summary>False when the queue is full (called under the bus's lock, so never concurrently with itself).</summary>
    internal bool Offer(ContainerEventResponse e) => _queue.Writer.TryWrite(e);

    internal void End() => _queue.Writer.TryComplete();

    internal void CutOff()
    {
        Overflowed = true;
        _queue.Writer.TryComplete(new EventSubscriberOverflowException(_capacity));
    }
}

/// <summary>A subscriber fell further behind than its queue holds and was cut off; the events it read are complete up to here.</summary>
public sealed class EventSubscriberOverflowException(int capacity)
    : Exception($"the event subscriber fell more than {capacity} events behind and was cut off after the events queued for it; list the containers again and subscribe again");
