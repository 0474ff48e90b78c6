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
/// message defines) and publishes it on the <see cref="ContainerEventBus"/>.
/// </summary>
/// <remarks>
/// Call it after the transition is visible (the status updated), from the code path that made it,
/// so one object's events come in the order of its life: created, started, stopped, deleted. For
/// a sandbox the event's container_id is the sandbox's id (as containerd sends it, and as kubelet's
/// evented PLEG expects for a deleted sandbox). A deleted object is gone from the stores when its
/// event is sent: pass the snapshot taken just before the removal.
/// </remarks>
public sealed class ContainerEvents(ContainerEventBus bus, IPodSnapshots snapshots, Func<long>? clock = null)
{
    private readonly Func<long> _clock = clock ?? Stats.UnixClock.Now;

    public ContainerEventBus Bus => bus;

    /// <summary>Publishes the event of <paramref name="containerId"/> (a container, or the sandbox itself) of pod <paramref name="sandboxId"/>.</summary>
    /// <param name="before">the pod's snapshot taken before a removal; null reads the current one.</param>
    public void Publish(ContainerEventType type, string containerId, string sandboxId, PodSnapshot? before = null)
    {
        var at = _clock();
        // Nobody listens most of the time (kubelet's evented PLEG is off by default): skip the snapshot.
        if (bus.SubscriberCount == 0)
            return;
        var snapshot = before ?? snapshots.Snapshot(sandboxId);
        var e = new ContainerEventResponse
        {
            ContainerId = containerId,
            ContainerEventType = type,
            CreatedAt = at,
            PodSandboxStatus = snapshot?.Pod,
        };
        if (snapshot is not null)
            e.ContainersStatuses.Add(snapshot.Containers);
        bus.Publish(e);
    }

    /// <summary>The snapshot of a pod about to be removed, for <see cref="Publish"/>'s <c>before</c>.</summary>
    public PodSnapshot? SnapshotBeforeRemoval(string sandboxId) =>
        bus.SubscriberCount == 0 ? null : snapshots.Snapshot(sandboxId);
}
