namespace Crid.Core.Containers;

public sealed partial class ContainerManager
{
    /// <summary>
    /// Records each exit the runtimes raise, in order, on its own loop: the status is written
    /// durably (fsync) before anyone waiting in Stop is released, so an exit once reported is
    /// never lost, whatever happens to the daemon next.
    /// </summary>
    private async Task RecordExitsAsync()
    {
        await foreach (var exit in _exits.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                RecordExit(exit);
            }
            catch (Exception e)
            {
                ContainerLog.ExitNotRecorded(_log, exit.Id, e.Message);
            }
        }
    }

    private void RecordExit(ContainerExit exit)
    {
        // The exit of a container this daemon does not list: one being created (its create failed
        // and is rolling back) or removed, or another daemon's. Nothing to record.
        if (_containers.Find(exit.Id, "container_id") is not { } container || container.Id != exit.Id)
            return;
        var changed = false;
        try
        {
            container.Status.Update(s =>
            {
                if (s.State == ContainerState.Exited)
                    return s;
                changed = true;
                return Exited(s, exit.ExitCode, ToNs(exit.FinishedAt), exit.OomKilled);
            });
        }
        catch (IOException e)
        {
            // The folder went with a Remove that raced the exit; nothing is left to mark.
            ContainerLog.ExitNotRecorded(_log, exit.Id, e.Message);
            return;
        }
        container.SignalExited();
        _events?.Stopped(container.Id, container.SandboxId);
        if (changed)
            ContainerLog.Exited(_log, exit.Id, exit.ExitCode, exit.OomKilled);
    }

    /// <summary>
    /// The status of an exited container: containerd's reasons (OOMKilled when the memory cgroup
    /// killed a process of it, else Completed for 0 and Error for anything else).
    /// </summary>
    private static ContainerStatus Exited(ContainerStatus s, int code, long finishedAt, bool oomKilled) => s with
    {
        State = ContainerState.Exited,
        Pid = 0,
        // The exit file's time comes from the kernel's coarse clock, a tick behind ours at most.
        FinishedAt = Math.Max(finishedAt, s.StartedAt),
        ExitCode = code,
        Reason = oomKilled ? "OOMKilled" : code == 0 ? "Completed" : "Error",
        Message = "",
    };

    /// <summary>What the runtime found at recovery (or after a kill whose exit never came) becomes the status.</summary>
    private void ApplyRuntimeState(Container container, ContainerRuntimeState state)
    {
        switch (state.Status)
        {
            case ContainerRuntimeStatus.Stopped when state.ExitCode is { } code:
                container.Status.Update(s => s.State == ContainerState.Exited ? s
                    : Exited(s, code, state.FinishedAt is { } at ? ToNs(at) : NowNs(), state.OomKilled));
                container.SignalExited();
                _events?.Stopped(container.Id, container.SandboxId);
                break;
            case ContainerRuntimeStatus.Stopped:
                RecordLostExit(container, "its exit was not recorded: its monitor died, or the host restarted");
                break;
            case ContainerRuntimeStatus.Running or ContainerRuntimeStatus.Paused:
                // Started, but the daemon died before it wrote so.
                container.Status.Update(s => s.State == ContainerState.Running && s.Pid == state.Pid ? s
                    : s with { State = ContainerState.Running, Pid = state.Pid, StartedAt = s.StartedAt != 0 ? s.StartedAt : NowNs() });
                break;
            case ContainerRuntimeStatus.Created:
                // A failed start is already recorded as an exit; otherwise the pid may have changed.
                container.Status.Update(s => s.State != ContainerState.Created || s.Pid == state.Pid ? s : s with { Pid = state.Pid });
                break;
        }
    }

    /// <summary>
    /// An exit nobody saw: EXITED with containerd's unknown exit code (255) and reason Unknown, so
    /// kubelet restarts or reports the container instead of waiting for it.
    /// </summary>
    private void RecordLostExit(Container container, string why)
    {
        var now = NowNs();
        container.Status.Update(s => s.State == ContainerState.Exited ? s : s with
        {
            State = ContainerState.Exited,
            Pid = 0,
            FinishedAt = now,
            ExitCode = 255,
            Reason = "Unknown",
            Message = why,
        });
        container.SignalExited();
        _events?.Stopped(container.Id, container.SandboxId);
        ContainerLog.ExitLost(_log, container.Id, why);
    }
}
