using System.Diagnostics;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>GetContainerEvents over the socket: what kubelet's evented PLEG subscribes to.</summary>
public sealed class EventsTests
{
    /// <summary>Reads the stream into a list until cancelled or ended.</summary>
    private sealed class Subscriber : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly AsyncServerStreamingCall<ContainerEventResponse> _call;
        private readonly List<ContainerEventResponse> _events = [];
        private readonly Task _reading;

        public Subscriber(RuntimeService.RuntimeServiceClient client)
        {
            _call = client.GetContainerEvents(new GetEventsRequest(), cancellationToken: _stop.Token);
            _reading = Task.Run(async () =>
            {
                await foreach (var e in _call.ResponseStream.ReadAllAsync(_stop.Token))
                {
                    lock (_events)
                        _events.Add(e);
                }
            });
        }

        public Task Reading => _reading;

        /// <summary>Set once the test has stopped the daemon: the stream may then end with the connection (Unavailable).</summary>
        public bool DaemonStopped { get; set; }

        public List<ContainerEventResponse> Events
        {
            get
            {
                lock (_events)
                    return [.. _events];
            }
        }

        public async Task<List<ContainerEventResponse>> WaitFor(int count, TimeSpan timeout)
        {
            var watch = Stopwatch.StartNew();
            while (Events.Count < count && watch.Elapsed < timeout && !_reading.IsCompleted)
                await Task.Delay(20);
            return Events;
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            try
            {
                await _reading;
            }
            catch (Exception e) when (e is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled })
            {
            }
            catch (RpcException e) when (DaemonStopped && e.StatusCode == StatusCode.Unavailable)
            {
                // The daemon's stop ended the connection under the stream.
            }
            _call.Dispose();
        }
    }

    /// <summary>Subscribes and waits until the daemon counts the subscriber, so no event of the test is published before it.</summary>
    private static async Task<Subscriber> Subscribe(DaemonProcess d, int expected = 1)
    {
        var s = new Subscriber(d.Runtime);
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(10))
        {
            var info = (await d.Runtime.StatusAsync(new StatusRequest { Verbose = true })).Info["events"];
            if (info.Contains($"\"subscribers\":{expected},"))
                return s;
            await Task.Delay(10);
        }
        throw new TimeoutException("the subscriber was not counted");
    }

    [Fact]
    public async Task Two_subscribers_see_every_transition_of_50_pods_lifecycles_in_order()
    {
        await using var d = await DaemonProcess.StartAsync();
        await using var first = await Subscribe(d, 1);
        await using var second = await Subscribe(d, 2);
        var ids = new string[50];
        await Parallel.ForEachAsync(Enumerable.Range(0, 50), new ParallelOptions { MaxDegreeOfParallelism = 5 }, async (i, _) =>
        {
            var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal($"ev{i}", i % 2 == 0 ? NamespaceMode.Pod : NamespaceMode.Container) })).PodSandboxId;
            ids[i] = id;
            await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
            // A second stop changes nothing and says nothing.
            await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        });

        var events = await first.WaitFor(200, TimeSpan.FromSeconds(30));
        Assert.Equal(200, events.Count);
        Assert.Equal(events.Select(e => (e.ContainerId, e.ContainerEventType, e.CreatedAt)), (await second.WaitFor(200, TimeSpan.FromSeconds(30))).Select(e => (e.ContainerId, e.ContainerEventType, e.CreatedAt)));
        for (var i = 0; i < 50; i++)
        {
            var mine = events.Where(e => e.ContainerId == ids[i]).ToList();
            Assert.Equal(
            [
                ContainerEventType.ContainerCreatedEvent, ContainerEventType.ContainerStartedEvent,
                ContainerEventType.ContainerStoppedEvent, ContainerEventType.ContainerDeletedEvent,
            ], mine.Select(e => e.ContainerEventType));
            Assert.Equal([PodSandboxState.SandboxReady, PodSandboxState.SandboxReady, PodSandboxState.SandboxNotready, PodSandboxState.SandboxNotready],
                mine.Select(e => e.PodSandboxStatus.State));
            // Every event names the pod as kubelet knows it, the deleted one too (kubelet drops the pod by its uid).
            Assert.All(mine, e => Assert.Equal($"uid-ev{i}", e.PodSandboxStatus.Metadata.Uid));
            Assert.All(mine, e => Assert.Equal(ids[i], e.PodSandboxStatus.Id));
            // Times in nanoseconds, in order.
            Assert.True(mine.Zip(mine.Skip(1)).All(p => p.First.CreatedAt <= p.Second.CreatedAt));
            Assert.InRange(mine[0].CreatedAt, DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds() * 1_000_000, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000);
        }
    }

    [Fact]
    public async Task A_pod_whose_infra_process_dies_is_reported_stopped_at_once()
    {
        await using var d = await DaemonProcess.StartAsync();
        await using var s = await Subscribe(d);
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("ev-infra") })).PodSandboxId;
        var pid = RecoveryTests.InfraPid(await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true }));
        Signals.Send(pid, 9);
        var events = await s.WaitFor(3, TimeSpan.FromSeconds(10));
        Assert.Equal(ContainerEventType.ContainerStoppedEvent, events[2].ContainerEventType);
        Assert.Equal(PodSandboxState.SandboxNotready, events[2].PodSandboxStatus.State);
        // The Stop that follows (kubelet's) has nothing new to say.
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        events = await s.WaitFor(4, TimeSpan.FromSeconds(10));
        Assert.Equal([ContainerEventType.ContainerCreatedEvent, ContainerEventType.ContainerStartedEvent, ContainerEventType.ContainerStoppedEvent, ContainerEventType.ContainerDeletedEvent],
            events.Select(e => e.ContainerEventType));
    }

    [Fact]
    public async Task An_open_stream_ends_when_the_daemon_stops_and_does_not_hold_the_shutdown_up()
    {
        await using var d = await DaemonProcess.StartAsync();
        var s = await Subscribe(d);
        s.DaemonStopped = true;
        var watch = Stopwatch.StartNew();
        Assert.Equal(0, await d.StopAsync(TimeSpan.FromSeconds(10)));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"the daemon took {watch.Elapsed} to stop");
        // The stream ended: with OK, or with the connection's end; never hanging.
        await Task.WhenAny(s.Reading, Task.Delay(TimeSpan.FromSeconds(5)));
        Assert.True(s.Reading.IsCompleted);
        await s.DisposeAsync();
    }
}
