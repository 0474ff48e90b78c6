using Crid.Core.Errors;

namespace Crid.Core.Containers;

public sealed partial class ContainerManager
{
    /// <summary>How long an exit may take to be recorded after SIGKILL before the runtime is asked directly.</summary>
    private static readonly TimeSpan KillGrace = TimeSpan.FromSeconds(30);

    /// <summary>
    /// StopContainer. The CRI comment: "Stops a running container with a grace period (i.e., timeout).
    /// This call is idempotent, and must not return an error if the container has already been
    /// stopped." The stop signal (the config's, the image's, or SIGTERM) goes to the container's
    /// process; after <paramref name="timeoutSeconds"/> (0: at once) every process of it gets
    /// SIGKILL. Returns once the exit is recorded. An unknown id is NotFound, as containerd and
    /// cri-o answer it.
    /// </summary>
    /// <param name="cancel">ends the wait for the container's lock and for its exit; a signal sent stays sent.</param>
    public async Task StopAsync(string idOrPrefix, long timeoutSeconds, CancellationToken cancel)
    {
        var container = Get(idOrPrefix);
        await container.Lock.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            if (!container.Removed)
                await StopLockedAsync(container, TimeSpan.FromSeconds(Math.Clamp(timeoutSeconds, 0, int.MaxValue / 1000)), cancel).ConfigureAwait(false);
        }
        finally
        {
            container.Lock.Release();
        }
    }

    private async Task StopLockedAsync(Container container, TimeSpan timeout, CancellationToken cancel)
    {
        var status = container.Status.Get();
        if (status.State == ContainerState.Exited)
            return;
        var runtime = _runtimes.Find(container.RuntimeHandler);
        if (runtime is null)
        {
            RecordLostExit(container, "its runtime handler is no longer configured");
            return;
        }
        try
        {
            if (status.State == ContainerState.Running && timeout > TimeSpan.Zero)
            {
                await runtime.KillAsync(container.Id, container.StopSignal, allProcesses: false, cancel).ConfigureAwait(false);
                if (await WaitForExitAsync(container, timeout, cancel).ConfigureAwait(false))
                {
                    ContainerLog.Stopped(_log, container.Id);
                    return;
                }
                ContainerLog.StopTimedOut(_log, container.Id, container.StopSignal, timeout.TotalSeconds);
            }
            // Every process of the container: with the pod's (or the host's) pid namespace, killing
            // the container's first process leaves the others alive.
            await runtime.KillAsync(container.Id, StopSignals.SIGKILL, allProcesses: status.State != ContainerState.Created, cancel).ConfigureAwait(false);
        }
        catch (NotFoundException)
        {
            // The runtime has no such container any more: there is nothing left to signal.
        }
        if (await WaitForExitAsync(container, KillGrace, cancel).ConfigureAwait(false))
        {
            ContainerLog.Stopped(_log, container.Id);
            return;
        }
        // No exit event: the monitor may have died with the container. The runtime says what it knows.
        ContainerRuntimeState state;
        try
        {
            state = await runtime.StateAsync(container.Id, cancel).ConfigureAwait(false);
        }
        catch (NotFoundException)
        {
            RecordLostExit(container, "the runtime no longer knows it");
            return;
        }
        if (state.Status != ContainerRuntimeStatus.Stopped)
            throw new RuntimeFailureException($"container {container.Id} is still {state.Status.ToString().ToLowerInvariant()} {KillGrace.TotalSeconds:F0} s after SIGKILL");
        ApplyRuntimeState(container, state);
        ContainerLog.Stopped(_log, container.Id);
    }

    /// <summary>True once the container's exit is recorded; false when <paramref name="limit"/> passed first.</summary>
    private static async Task<bool> WaitForExitAsync(Container container, TimeSpan limit, CancellationToken cancel)
    {
        try
        {
            await container.Exited.WaitAsync(limit, cancel).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return container.Status.Get().State == ContainerState.Exited;
        }
    }

    /// <summary>StopPodSandbox: every container of the pod, at once (containerd stops them with timeout 0).</summary>
    public async Task StopAllAsync(string sandboxId, CancellationToken cancellationToken)
    {
        var stops = OfSandbox(sandboxId).Select(async c =>
        {
            await c.Lock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (!c.Removed)
                    await StopLockedAsync(c, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                c.Lock.Release();
            }
        });
        await Task.WhenAll(stops).ConfigureAwait(false);
    }
}
