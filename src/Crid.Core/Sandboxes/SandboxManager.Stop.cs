using Crid.Linux;

namespace Crid.Core.Sandboxes;

public sealed partial class SandboxManager
{
    /// <summary>
    /// StopPodSandbox. The CRI comment: "If there are any running containers in the sandbox, they must
    /// be forcibly terminated. ... This call is idempotent, and must not return an error if all relevant
    /// resources have already been reclaimed." So an unknown id and a second Stop both succeed.
    /// </summary>
    public Task StopAsync(string idOrPrefix) => UnderLockAsync(idOrPrefix, StopLocked);

    /// <summary>
    /// Runs <paramref name="action"/> on the sandbox under its lock; an unknown id, or a sandbox removed
    /// while the caller waited for the lock, is nothing to do (Stop and Remove are idempotent).
    /// </summary>
    private async Task UnderLockAsync(string idOrPrefix, Action<Sandbox> action)
    {
        var sandbox = _store.Find(idOrPrefix);
        if (sandbox is null)
            return;
        await sandbox.Lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!sandbox.Removed)
                action(sandbox);
        }
        finally
        {
            sandbox.Lock.Release();
        }
    }

    /// <summary>Kills the infra process and unpins every namespace; the caller holds the sandbox's lock.</summary>
    private void StopLocked(Sandbox sandbox)
    {
        if (sandbox.InfraPid != 0 && sandbox.Pins.TryGetValue("pid", out var pidPin))
        {
            // Killing PID 1 of the pod's pid namespace kills every process in it.
            InfraProcess.Kill(sandbox.InfraPid, pidPin);
        }
        // CNI DEL while the network namespace is still pinned; a failure is logged and owed (Remove retries).
        var detached = TryDetachNetwork(sandbox);
        foreach (var type in StopOrder)
        {
            if (sandbox.Pins.TryGetValue(type, out var path))
                PinnedNamespace.FromPath(path).Remove();
        }
        if (sandbox.HasOwnShm)
            PodShm.Unmount(sandbox.ShmPath);
        if (sandbox.State == SandboxState.NotReady && sandbox.InfraPid == 0 && !detached)
            return;
        sandbox.State = SandboxState.NotReady;
        sandbox.InfraPid = 0;
        PersistRecord(sandbox);
        SandboxLog.Stopped(_log, sandbox.Id);
    }

    /// <summary>The user namespace owns the others, so it goes last.</summary>
    private static readonly string[] StopOrder = ["pid", "uts", "ipc", "net", "user"];
}
