using Crid.Core.Events;
using Runtime.V1;

namespace Crid.Core.Tests;

/// <summary>The container event bus: fan-out, order, and what a slow subscriber costs (nothing, to anyone else).</summary>
public sealed class EventBusTests
{
    private static ContainerEventResponse Event(int n, ContainerEventType type = ContainerEventType.ContainerCreatedEvent) =>
        new() { ContainerId = $"c{n}", ContainerEventType = type, CreatedAt = n };

    private static async Task<List<ContainerEventResponse>> Take(EventSubscription s, int count)
    {
        var got = new List<ContainerEventResponse>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await foreach (var e in s.ReadAllAsync(timeout.Token))
        {
            got.Add(e);
            if (got.Count == count)
                break;
        }
        return got;
    }

    [Fact]
    public async Task Every_subscriber_gets_every_event_published_after_it_subscribed_in_publication_order()
    {
        var bus = new ContainerEventBus();
        bus.Publish(Event(0));
        using var a = bus.Subscribe();
        using var b = bus.Subscribe();
        for (var i = 1; i <= 100; i++)
            bus.Publish(Event(i));
        Assert.Equal(Enumerable.Range(1, 100).Select(i => $"c{i}"), (await Take(a, 100)).Select(e => e.ContainerId));
        Assert.Equal(Enumerable.Range(1, 100).Select(i => $"c{i}"), (await Take(b, 100)).Select(e => e.ContainerId));
        Assert.Equal(101, bus.Published);
    }

    [Fact]
    public async Task Events_published_from_many_threads_reach_every_subscriber_in_the_same_order()
    {
        var bus = new ContainerEventBus(queueCapacity: 100_000);
        using var a = bus.Subscribe();
        using var b = bus.Subscribe();
        var start = new Barrier(4);
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < 5000; i++)
                bus.Publish(Event(t * 10_000 + i));
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        var seenA = (await Take(a, 20_000)).Select(e => e.ContainerId).ToList();
        var seenB = (await Take(b, 20_000)).Select(e => e.ContainerId).ToList();
        Assert.Equal(seenA, seenB);
        // Each publisher's own events stay in its order.
        for (var t = 0; t < 4; t++)
        {
            var mine = seenA.Where(id => int.Parse(id[1..]) / 10_000 == t).Select(id => int.Parse(id[1..]) % 10_000);
            Assert.Equal(Enumerable.Range(0, 5000), mine);
        }
    }

    [Fact]
    public async Task A_subscriber_that_never_reads_is_cut_off_after_its_queue_and_nobody_else_notices()
    {
        var bus = new ContainerEventBus(queueCapacity: 8);
        var stuck = bus.Subscribe();
        using var reader = bus.Subscribe();
        var received = new List<string>();
        int Count()
        {
            lock (received)
                return received.Count;
        }
        var reading = Task.Run(async () =>
        {
            await foreach (var e in reader.ReadAllAsync())
            {
                lock (received)
                    received.Add(e.ContainerId);
                if (e.ContainerId == "c999")
                    return;
            }
        });
        // Publishing a thousand events does not wait for the stuck subscriber. The reader is let catch
        // up every four events (its queue holds eight), however loaded the machine; only the
        // publishing itself is timed.
        var publishing = TimeSpan.Zero;
        for (var i = 0; i < 1000; i++)
        {
            var t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            bus.Publish(Event(i));
            publishing += System.Diagnostics.Stopwatch.GetElapsedTime(t0);
            if (i % 4 == 3)
            {
                var caughtUp = System.Diagnostics.Stopwatch.StartNew();
                while (Count() < i + 1 && caughtUp.Elapsed < TimeSpan.FromSeconds(10))
                    await Task.Delay(1);
            }
        }
        Assert.True(publishing < TimeSpan.FromSeconds(5), $"publishing took {publishing}");
        await reading.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => $"c{i}"), received);

        // The stuck one was unsubscribed at its ninth event; it still gets the eight it had, then the overflow.
        Assert.True(stuck.Overflowed);
        Assert.Equal(1, bus.SubscriberCount);
        Assert.Equal(1, bus.Overflows);
        var got = new List<string>();
        var error = await Assert.ThrowsAsync<EventSubscriberOverflowException>(async () =>
        {
            await foreach (var e in stuck.ReadAllAsync())
                got.Add(e.ContainerId);
        });
        Assert.Equal(Enumerable.Range(0, 8).Select(i => $"c{i}"), got);
        Assert.Contains("more than 8 events behind", error.Message);
        stuck.Dispose();
    }

    [Fact]
    public async Task Leaving_ends_the_readers_enumeration_and_the_bus_forgets_the_subscriber()
    {
        var bus = new ContainerEventBus();
        var s = bus.Subscribe();
        var reading = Task.Run(async () =>
        {
            var n = 0;
            await foreach (var _ in s.ReadAllAsync())
                n++;
            return n;
        });
        bus.Publish(Event(1));
        while (s.Pending > 0)
            await Task.Delay(1);
        s.Dispose();
        Assert.Equal(1, await reading.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, bus.SubscriberCount);
        bus.Publish(Event(2));
    }

    [Fact]
    public async Task A_reader_that_gives_up_is_cancelled_without_disturbing_the_bus()
    {
        var bus = new ContainerEventBus();
        using var s = bus.Subscribe();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in s.ReadAllAsync(cts.Token))
            {
            }
        });
        bus.Publish(Event(1));
        Assert.Equal(1, s.Pending);
    }

    private sealed class Snapshots : IPodSnapshots
    {
        public int Calls;

        public PodSnapshot? Snapshot(string sandboxId)
        {
            Calls++;
            return sandboxId == "gone" ? null : new PodSnapshot(
                new PodSandboxStatus { Id = sandboxId, State = PodSandboxState.SandboxReady, Metadata = new PodSandboxMetadata { Name = "web", Uid = "u1" } },
                [new ContainerStatus { Id = "c1", State = ContainerState.ContainerRunning }]);
        }
    }

    [Fact]
    public async Task An_event_carries_the_pods_status_and_its_containers_statuses_at_publication()
    {
        var snapshots = new Snapshots();
        var events = new ContainerEvents(new ContainerEventBus(), snapshots, () => 1234);
        // Nobody listens: no snapshot is built.
        events.Created("c0", "p1");
        Assert.Equal(0, snapshots.Calls);
        Assert.Null(events.SnapshotBeforeRemoval("p1"));

        using var s = events.Bus.Subscribe();
        events.Created("c1", "p1");
        var before = events.SnapshotBeforeRemoval("p1");
        events.Deleted("p1", "gone", before);
        events.Deleted("c9", "gone", null);
        var got = await Take(s, 3);

        Assert.Equal(ContainerEventType.ContainerCreatedEvent, got[0].ContainerEventType);
        Assert.Equal("c1", got[0].ContainerId);
        Assert.Equal(1234, got[0].CreatedAt);
        Assert.Equal("p1", got[0].PodSandboxStatus.Id);
        Assert.Equal("u1", got[0].PodSandboxStatus.Metadata.Uid);
        Assert.Equal(ContainerState.ContainerRunning, Assert.Single(got[0].ContainersStatuses).State);
        // A removed sandbox's event carries the status from before the removal (kubelet needs its uid).
        Assert.Equal("p1", got[1].ContainerId);
        Assert.Equal("p1", got[1].PodSandboxStatus.Id);
        // Without one, the pod is unknown: no status, as the CRI message allows.
        Assert.Null(got[2].PodSandboxStatus);
        Assert.Empty(got[2].ContainersStatuses);
    }

    private static async Task<List<(string Id, ContainerEventType Type)>> Steps(EventSubscription s, int count) =>
        (await Take(s, count)).Select(e => (e.ContainerId, e.ContainerEventType)).ToList();

    [Fact]
    public async Task Each_step_of_an_objects_life_is_sent_once_and_in_order_whoever_reports_it()
    {
        var events = new ContainerEvents(new ContainerEventBus(), new Snapshots());
        using var s = events.Bus.Subscribe();
        events.Created("c1", "p1");
        events.Created("c1", "p1");
        events.Starting("c1");
        // The process ended before its start was reported: the stop waits for the start.
        events.Stopped("c1", "p1");
        events.Started("c1", "p1");
        events.Stopped("c1", "p1");
        events.Deleted("c1", "p1", null);
        // A start that failed: created, then stopped, never started.
        events.Created("c2", "p1");
        events.Starting("c2");
        events.StartFailed("c2", "p1");
        events.Started("c2", "p1");
        // Stopped twice (StopPodSandbox after the infra process died): once.
        events.Stopped("p1", "p1");
        events.Stopped("p1", "p1");
        events.Deleted("p1", "p1", null);
        Assert.Equal(
        [
            ("c1", ContainerEventType.ContainerCreatedEvent),
            ("c1", ContainerEventType.ContainerStartedEvent),
            ("c1", ContainerEventType.ContainerStoppedEvent),
            ("c1", ContainerEventType.ContainerDeletedEvent),
            ("c2", ContainerEventType.ContainerCreatedEvent),
            ("c2", ContainerEventType.ContainerStoppedEvent),
            ("p1", ContainerEventType.ContainerStoppedEvent),
            ("p1", ContainerEventType.ContainerDeletedEvent),
        ], await Steps(s, 8));
        Assert.Equal(0, s.Pending);
        // Only c2 is still followed: it was never deleted.
        Assert.Equal(1, events.Tracked);
    }

    [Fact]
    public async Task Steps_reported_from_racing_threads_still_come_in_life_order()
    {
        var events = new ContainerEvents(new ContainerEventBus(queueCapacity: 100_000), new Snapshots());
        using var s = events.Bus.Subscribe();
        for (var i = 0; i < 200; i++)
        {
            var id = $"c{i}";
            events.Created(id, "p1");
            events.Starting(id);
            // The exit watcher and the start race.
            var exit = Task.Run(() => events.Stopped(id, "p1"));
            var start = Task.Run(() => events.Started(id, "p1"));
            await Task.WhenAll(exit, start);
            events.Deleted(id, "p1", null);
        }
        var got = await Steps(s, 800);
        for (var i = 0; i < 200; i++)
        {
            Assert.Equal(
            [
                ContainerEventType.ContainerCreatedEvent, ContainerEventType.ContainerStartedEvent,
                ContainerEventType.ContainerStoppedEvent, ContainerEventType.ContainerDeletedEvent,
            ], got.Skip(i * 4).Take(4).Select(e => e.Type));
        }
    }
}
