using Crid.Core.Configuration;

namespace Crid.Core.Sandboxes;

public sealed partial class SandboxManager
{
    /// <summary>
    /// RemovePodSandbox. The CRI comment: "If there are any running containers in the sandbox, they must
    /// be forcibly terminated and removed. This call is idempotent, and must not return an error if the
    /// sandbox has already been removed." It stops the sandbox first when needed.
    /// </summary>
    /// <param name="cancel">ends the wait for the sandbox's lock; a Remove under way runs to its end.</param>
    public Task RemoveAsync(string idOrPrefix, CancellationToken cancel) => UnderLockAsync(idOrPrefix, RemoveLockedAsync, cancel);

    private async Task RemoveLockedAsync(Sandbox sandbox)
    {
        // The containers go first: a crash from here on leaves a sandbox (kubelet retries the
        // Remove) or, once the record went, containers of no sandbox, which recovery removes.
        if (_containers is { } containers)
            await containers.RemoveAllAsync(sandbox.Id, CancellationToken.None).ConfigureAwait(false);
        // Stop first: it marks a READY sandbox NOTREADY before its DEL, so a crash right after the
        // DEL leaves a sandbox that recovery finishes stopping, never a READY one with no network.
        await StopLockedAsync(sandbox).ConfigureAwait(false);
        // A DEL that Stop could not do is owed before the record goes; if it fails again, Remove
        // fails and kubelet retries, as the address and the host-side interface would leak otherwise.
        // The netns may be unpinned by now: CNI plugins take a DEL without one.
        await DetachNetworkOrThrowAsync(sandbox).ConfigureAwait(false);
        // Its last status, for the event kubelet drops the pod on (it is gone from the store when sent).
        var before = _events?.SnapshotBeforeRemoval(sandbox.Id);
        // No pin and no network of this uuid is left (Stop removed the pins or threw, the DEL above
        // succeeded or threw), so its uuid record goes first: one left behind by a crash would have
        // recovery DEL a network that is long gone. A crash right after it leaves a record with no
        // uuid record, which recovery writes again. Then the record: a crash in the middle leaves a
        // folder without a record, which the next start deletes, never a record whose files are half gone.
        _intents.Remove(sandbox.Uuid);
        TestCrash.At(_options, TestCrash.RemoveAfterIntentDropped);
        File.Delete(Path.Combine(sandbox.Dir, SandboxRecord.FileName));
        DeleteSandboxDir(sandbox.Dir);
        sandbox.MarkRemoved();
        _sandboxes.Remove(sandbox);
        _names.Release(sandbox.Name, sandbox.Id);
        _creations.Forget(sandbox.Name);
        _events?.Deleted(sandbox.Id, sandbox.Id, before);
        SandboxLog.Removed(_log, sandbox.Id);
    }
}
