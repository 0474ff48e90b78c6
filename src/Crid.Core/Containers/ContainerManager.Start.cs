using Crid.Core.Errors;

namespace Crid.Core.Containers;

public sealed partial class ContainerManager
{
    /// <summary>
    /// StartContainer: runs the created container's process. A container that is not in the created
    /// state cannot be started (CRI containers are never restarted: kubelet creates a new one). A
    /// start the runtime refuses leaves the container EXITED with reason StartError and the
    /// runtime's message, as containerd reports it, and fails the call.
    /// </summary>
    public async Task StartAsync(string idOrPrefix, CancellationToken cancel)
    {
        var container = Get(idOrPrefix);
        await container.Lock.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            if (container.Removed)
                throw new NotFoundException($"container {container.Id} was removed");
            var status = container.Status.Get();
            if (status.State != ContainerState.Created)
                throw new FailedPreconditionException($"container {container.Id} is {status.State.ToString().ToLowerInvariant()}: only a created container can be started");
            // A Stop or Remove of the pod under way would find this container starting under it.
            var sandbox = _sandboxes.Find(container.SandboxId);
            if (sandbox is null || sandbox.State != Sandboxes.SandboxState.Ready)
                throw new FailedPreconditionException($"sandbox {container.SandboxId} of container {container.Id} is not ready");
            var runtime = _runtimes.For(container.RuntimeHandler);
            // Before the process runs: a started_at after its finished_at would confuse every reader.
            var started = NowNs();
            _events?.Starting(container.Id);
            try
            {
                // Not the call's token: a start the runtime has begun is seen through, so the status tells the truth.
                await runtime.StartAsync(container.Id, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is RuntimeFailureException or FailedPreconditionException or NotFoundException)
            {
                RecordStartFailure(container, e.Message);
                _events?.StartFailed(container.Id, container.SandboxId);
                throw new RuntimeFailureException($"container {container.Id} failed to start: {e.Message}", e);
            }
            container.Status.Update(s => s.State switch
            {
                // The process ran, and its exit was recorded before this update: it keeps its exit.
                ContainerState.Exited => s.StartedAt == 0 ? s with { StartedAt = Math.Min(started, s.FinishedAt) } : s,
                _ => s with { State = ContainerState.Running, StartedAt = started },
            });
            ContainerLog.Started(_log, container.Id);
            _events?.Started(container.Id, container.SandboxId);
        }
        finally
        {
            container.Lock.Release();
        }
    }

    /// <summary>
    /// containerd's errorStartReason/errorStartExitCode: a container whose start failed is EXITED,
    /// exit code 128, reason StartError, with the runtime's message, so kubelet reports why.
    /// </summary>
    private void RecordStartFailure(Container container, string message)
    {
        var now = NowNs();
        container.Status.Update(s => s.State == ContainerState.Exited ? s : s with
        {
            State = ContainerState.Exited,
            Pid = 0,
            FinishedAt = now,
            ExitCode = 128,
            Reason = "StartError",
            Message = message,
        });
        container.SignalExited();
        ContainerLog.StartFailed(_log, container.Id, message);
    }
}
