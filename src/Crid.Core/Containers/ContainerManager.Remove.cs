using Crid.Core.Sandboxes;
using Crid.Linux;

namespace Crid.Core.Containers;

public sealed partial class ContainerManager
{
    /// <summary>
    /// RemoveContainer. The CRI comment: "If the container is running, the container must be forcibly
    /// removed. This call is idempotent, and must not return an error if the container has already
    /// been removed." The runtime kills and deletes it; then its record, rootfs, writable layer and
    /// volumes go, and its hold on the image's layers is released. The log file stays (kubelet's).
    /// </summary>
    /// <param name="cancel">ends the wait for the container's lock; a Remove under way runs to its end.</param>
    public async Task RemoveAsync(string idOrPrefix, CancellationToken cancel)
    {
        var container = Find(idOrPrefix);
        if (container is null)
            return;
        await container.Lock.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            if (!container.Removed)
                await RemoveLockedAsync(container).ConfigureAwait(false);
        }
        finally
        {
            container.Lock.Release();
        }
    }

    private async Task RemoveLockedAsync(Container container)
    {
        var wasRunning = container.State == ContainerState.Running;
        // runc delete --force kills a running container and waits for it; a failure here leaves
        // everything as it was, and kubelet retries.
        if (_runtimes.Find(container.RuntimeHandler) is { } runtime)
            await runtime.DeleteAsync(container.Id, CancellationToken.None).ConfigureAwait(false);
        else
            ContainerLog.NoRuntimeToDelete(_log, container.Id, container.RuntimeHandler);
        // A running container the delete killed stopped here, by SIGKILL: conmon's exit, should it
        // still come, finds no container any more, so the status says so now (while the record is
        // still there to take it), and the stopped and deleted events carry it.
        if (wasRunning)
        {
            try
            {
                container.Status.Update(s => s.State == ContainerState.Exited ? s : Exited(s, 137, NowNs(), oomKilled: false));
            }
            catch (IOException e)
            {
                ContainerLog.ExitNotRecorded(_log, container.Id, e.Message);
            }
        }
        // The record first: a crash from here on leaves a folder without a record, which the next
        // start deletes (and whose image hold it releases), never a record whose files are half gone.
        File.Delete(Path.Combine(container.Dir, ContainerRecord.FileName));
        if (wasRunning)
            _events?.Stopped(container.Id, container.SandboxId);
        var before = _events?.SnapshotBeforeRemoval(container.SandboxId);
        container.MarkRemoved();
        _containers.Remove(container);
        try
        {
            await BlockingCalls.RunAsync(() => { DeleteContainerDir(container.Dir); return 0; }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The container is gone for kubelet; what is left of its folder has no record, and the next start deletes it.
            ContainerLog.FolderNotDeleted(_log, container.Dir, e.Message);
        }
        _images.Release(container.Id);
        _names.Release(container.Name, container.Id);
        _creations.Forget(container.Name);
        container.SignalExited();
        ContainerLog.Removed(_log, container.Id);
        _events?.Deleted(container.Id, container.SandboxId, before);
    }

    /// <summary>RemovePodSandbox: every container of the pod, killed if running, and removed.</summary>
    public async Task RemoveAllAsync(string sandboxId, CancellationToken cancellationToken)
    {
        foreach (var c in OfSandbox(sandboxId))
            await RemoveAsync(c.Id, cancellationToken).ConfigureAwait(false);
    }
}
