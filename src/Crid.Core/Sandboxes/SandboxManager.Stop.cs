using Crid.Core.Configuration;
using Crid.Linux;

namespace Crid.Core.Sandboxes;

public sealed partial class SandboxManager
{
    /// <summary>
    /// StopPodSandbox. The CRI comment: "If there are any running containers in the sandbox, they must
    /// be forcibly terminated. ... This call is idempotent, and must not return an error if all relevant
    /// resources have already been reclaimed." So an unknown id and a second Stop both succeed.
    /// </summary>
    /// <param name="cancel">ends the wait for the sandbox's lock; a Stop under way runs to its end.</param>
    public Task StopAsync(string idOrPrefix, CancellationToken cancel) => UnderLockAsync(idOrPrefix, StopLockedAsync, cancel);

    /// <summary>
    /// Runs <paramref name="action"/> on the sandbox under its lock; an unknown id, or a sandbox removed
    /// while the caller waited for the lock, is nothing to do (Stop and Remove are idempotent).
    /// </summary>
    private async Task UnderLockAsync(string idOrPrefix, Func<Sandbox, Task> action, CancellationToken cancel)
    {
        var sandbox = _sandboxes.Find(idOrPrefix, "pod_sandbox_id");
        if (sandbox is null)
            return;
        await sandbox.Lock.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            if (!sandbox.Removed)
                await action(sandbox).ConfigureAwait(false);
        }
        finally
        {
            sandbox.Lock.Release();
        }
    }

    /// <summary>Kills the infra process and unpins every namespace; the caller holds the sandbox's lock.</summary>
    private async Task StopLockedAsync(Sandbox sandbox)
    {
        // Containers first, while their namespaces are still pinned and their processes can be signalled.
        if (_containers is { } containers)
            await containers.StopAllAsync(sandbox.Id, CancellationToken.None).ConfigureAwait(false);
        // An exit of the infra process from here on is this Stop's doing, not news.
        sandbox.InfraWatch?.Dispose();
        sandbox.InfraWatch = null;
        var status = sandbox.Status.Get();
        if (status.InfraPid != 0 && sandbox.Pins.TryGetValue("pid", out var pidPin))
        {
            // Killing PID 1 of the pod's pid namespace kills every process in it.
            await InfraProcess.KillAsync(status.InfraPid, pidPin).ConfigureAwait(false);
        }
        if (status.State == SandboxState.Ready && status.Network is { Attached: true })
        {
            // NOTREADY before the DEL: a crash after the DEL must not leave a sandbox that a restarted
            // daemon finds READY (its pins still mounted) with its network gone. Recovery finishes the
            // Stop of a NOTREADY sandbox that still has pins or a network.
            sandbox.Status.Update(s => s with { State = SandboxState.NotReady, InfraPid = 0 });
        }
        // CNI DEL while the network namespace is still pinned; a failure is logged and owed (Remove retries).
        var network = await TryDetachNetworkAsync(sandbox, status.Network).ConfigureAwait(false);
        if (!ReferenceEquals(network, status.Network))
            TestCrash.At(_options, TestCrash.StopAfterCniDel);
        foreach (var type in StopOrder)
        {
            if (sandbox.Pins.TryGetValue(type, out var path))
                PinnedNamespace.FromPath(path).Remove();
        }
        if (sandbox.HasOwnShm)
            PodShm.Unmount(sandbox.ShmPath);
        if (status.State == SandboxState.NotReady && status.InfraPid == 0 && ReferenceEquals(network, status.Network))
            return;
        sandbox.Status.Update(s => s with { State = SandboxState.NotReady, InfraPid = 0, Network = network });
        _events?.Stopped(sandbox.Id, sandbox.Id);
        SandboxLog.Stopped(_log, sandbox.Id);
    }

    /// <summary>The user namespace owns the others, so it goes last.</summary>
    private static readonly string[] StopOrder = ["pid", "uts", "ipc", "net", "user"];

    /// <summary>
    /// Watches a ready sandbox's infra process: when PID 1 of the pod's pid namespace dies, no process
    /// can join that namespace any more (pid_namespaces(7)), so the sandbox is NOTREADY at once, and
    /// kubelet, which polls the status, recreates the pod.
    /// </summary>
    private void WatchInfra(Sandbox sandbox)
    {
        var pid = sandbox.Status.Get().InfraPid;
        if (pid == 0)
            return;
        var watch = _exits.Watch(pid, () => InfraExited(sandbox, pid));
        if (watch is null)
            InfraExited(sandbox, pid);
        else
            sandbox.InfraWatch = watch;
    }

    private void InfraExited(Sandbox sandbox, int pid)
    {
        // Our child (started by this daemon) is reaped here; one started before a restart has init as parent.
        InfraProcess.TryReapExited(pid);
        var changed = false;
        try
        {
            sandbox.Status.Update(s =>
            {
                if (s.InfraPid != pid || s.State != SandboxState.Ready)
                    return s;
                changed = true;
                return s with { State = SandboxState.NotReady, InfraPid = 0 };
            });
        }
        catch (IOException e)
        {
            // The folder went with a Remove that raced the exit; nothing is left to mark.
            SandboxLog.InfraExitNotRecorded(_log, sandbox.Id, e.Message);
            return;
        }
        if (changed)
        {
            _events?.Stopped(sandbox.Id, sandbox.Id);
            SandboxLog.InfraExited(_log, pid, sandbox.Id);
        }
    }
}
