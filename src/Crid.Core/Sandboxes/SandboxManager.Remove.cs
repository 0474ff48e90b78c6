namespace Crid.Core.Sandboxes;

public sealed partial class SandboxManager
{
    /// <summary>
    /// RemovePodSandbox. The CRI comment: "If there are any running containers in the sandbox, they must
    /// be forcibly terminated and removed. This call is idempotent, and must not return an error if the
    /// sandbox has already been removed." It stops the sandbox first when needed.
    /// </summary>
    public Task RemoveAsync(string idOrPrefix) => UnderLockAsync(idOrPrefix, RemoveLocked);

    private void RemoveLocked(Sandbox sandbox)
    {
        // A DEL that Stop could not do is owed before the record goes; if it fails again, Remove
        // fails and kubelet retries, as the address and the host-side interface would leak otherwise.
        DetachNetworkOrThrow(sandbox);
        StopLocked(sandbox);
        // The record goes first: a crash in the middle leaves a folder without a record, which the
        // next start deletes, never a record whose files are half gone.
        File.Delete(Path.Combine(sandbox.Dir, SandboxRecord.FileName));
        DeleteSandboxDir(sandbox.Dir);
        sandbox.Removed = true;
        _store.Remove(sandbox);
        _store.ReleaseName(sandbox.Name, sandbox.Id);
        SandboxLog.Removed(_log, sandbox.Id);
    }
}
