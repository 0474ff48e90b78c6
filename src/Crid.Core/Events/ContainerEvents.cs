using System.Collections.Concurrent;
using Runtime.V1;

namespace Crid.Core.Events;

/// <summary>A pod's status and its containers' statuses at one moment, as CRI messages.</summary>
/// <param name="Pod">What PodSandboxStatus would answer (without verbose info).</param>
/// <param name="Containers">What ContainerStatus would answer for each container of the pod.</param>
public sealed record PodSnapshot(PodSandboxStatus Pod, IReadOnlyList<ContainerStatus> Containers);

/// <summary>
/// Where events get the statuses they carry. The server implements it with the same mappings its
/// status RPCs use, so an event says exactly what PodSandboxStatus and ContainerStatus would.
/// </summary>
public interface IPodSnapshots
{
    /// <summary>The pod's snapshot now; null when there is no such pod (any more).</summary>
    PodSnapshot? Snapshot(string sandboxId);
}

/// <summary>
/// What the sandbox and container lifecycles call at each transition: builds the CRI
/// ContainerEventResponse (the pod's status and its containers' statuses at that moment, as the
/// message defines) and publishes it on the <see cref="ContainerEventBus"/>. For a sandbox the
/// event's container_id is the sandbox's own id, as containerd sends it and as kubelet's evented
/// PLEG expects of a deleted sandbox.
/// </summary>
/// <remarks>
/// <para>
/// Each object's events come in the order of its life, whichever thread reports a step: created,
/// started, stopped, deleted, each at most once. A step reported again (a second StopPodSandbox,
/// an exit seen by the watcher and by recovery) is not sent again, and an exit reported while a
/// start is still on its way to reporting itself (a process that ends at once) is held until the
/// start is sent: <see cref="Starting"/> opens that window, <see cref="Started"/> or
/// <see cref="StartFailed"/> closes it.
/// </para>
/// <para>
/// Call each after the step is visible in the status, so the event's statuses show it. A deleted
/// object is gone from the stores when its event is sent: pass the snapshot taken just before the
/// removal (<see cref="SnapshotBeforeRemoval"/>).
/// </para>
/// </remarks>
public sealed class ContainerEvents(ContainerEventBus bus, IPodSnapshots snapshots, Func<long>? clock = null)
{
    private enum Stage { None, Created, Starting, Started, Stopped }

    private sealed class Track
    {
        public readonly Lock Lock = new();
        public Stage Stage;
        public bool StopPending;
    }

    private readonly Func<long> _clock = clock ?? Stats.UnixClock.Now;
    private readonly ConcurrentDictionary<string, Track> _tracks = new(StringComparer.Ordinal);

    public ContainerEventBus Bus => bus;

    /// <summary>Objects whose life is being followed (created and not yet deleted).</summary>
    public int Tracked => _tracks.Count;

    public void Created(string id, string sandboxId) => Step(id, t =>
    {
        if (t.Stage != Stage.None)
            return;
        t.Stage = Stage.Created;
        Publish(ContainerEventType.ContainerCreatedEvent, id, sandboxId, null);
    });

    /// <summary>A start is under way: an exit reported before <see cref="Started"/> waits for it.</summary>
    public void Starting(string id) => Step(id, t =>
    {
        if (t.Stage is Stage.None or Stage.Created)
            t.Stage = Stage.Starting;
    });

    public void Started(string id, string sandboxId) => Step(id, t =>
    {
        if (t.Stage >= Stage.Started)
            return;
        t.Stage = Stage.Started;
        Publish(ContainerEventType.ContainerStartedEvent, id, sandboxId, null);
        if (t.StopPending)
            Stop(t, id, sandboxId);
    });

    /// <summary>The start failed: the object never ran, and is stopped (containerd's StartError exit).</summary>
    public void StartFailed(string id, string sandboxId) => Step(id, t =>
    {
        if (t.Stage < Stage.Stopped)
            Stop(t, id, sandboxId);
    });

    public void Stopped(string id, string sandboxId) => Step(id, t =>
    {
        if (t.Stage == Stage.Starting)
            t.StopPending = true;
        else if (t.Stage < Stage.Stopped)
            Stop(t, id, sandboxId);
    });

    /// <param name="before">the pod's snapshot from before the removal (<see cref="SnapshotBeforeRemoval"/>).</param>
    public void Deleted(string id, string sandboxId, PodSnapshot? before)
    {
        var track = _tracks.GetOrAdd(id, _ => new Track());
        lock (track.Lock)
        {
            _tracks.TryRemove(new KeyValuePair<string, Track>(id, track));
            Publish(ContainerEventType.ContainerDeletedEvent, id, sandboxId, before);
        }
    }

    /// <summary>The snapshot of a pod one of whose objects is about to be removed, for <see cref="Deleted"/>.</summary>
    public PodSnapshot? SnapshotBeforeRemoval(string sandboxId) =>
        bus.SubscriberCount == 0 ? null : snapshots.Snapshot(sandboxId);

    private void Step(string id, Action<Track> step)
    {
        var track = _tracks.GetOrAdd(id, _ => new Track());
        lock (track.Lock)
            step(track);
    }

    private void Stop(Track t, string id, string sandboxId)
    {
        t.Stage = Stage.Stopped;
        t.StopPending = false;
        Publish(ContainerEventType.ContainerStoppedEvent, id, sandboxId, null);
    }

    private void Publish(ContainerEventType type, string id, string sandboxId, PodSnapshot? before)
    {
        var at = _clock();
        // Nobody listens most of the time (kubelet's evented PLEG is off by default): no snapshot then.
        if (bus.SubscriberCount == 0)
            return;
        var snapshot = before ?? snapshots.Snapshot(sandboxId);
        var e = new ContainerEventResponse
        {
            ContainerId = id,
            ContainerEventType = type,
            CreatedAt = at,
            PodSandboxStatus = snapshot?.Pod,
        };
        if (snapshot is not null)
            e.ContainersStatuses.Add(snapshot.Containers);
        bus.Publish(e);
    }
}
