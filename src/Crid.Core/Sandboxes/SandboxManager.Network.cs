using Crid.Core.Errors;
using Crid.Core.Networking;

namespace Crid.Core.Sandboxes;

public sealed partial class SandboxManager
{
    /// <summary>The pod network component, for Status and UpdateRuntimeConfig.</summary>
    public PodNetwork Network => _network;

    /// <summary>Best-effort CNI DEL for Stop and recovery: the attachment after it (detached, or still owed).</summary>
    private async Task<NetworkAttachment?> TryDetachNetworkAsync(Sandbox sandbox, NetworkAttachment? attachment)
    {
        if (attachment is not { Attached: true })
            return attachment;
        try
        {
            return await _network.DetachAsync(sandbox.Id, sandbox.Config, sandbox.Pins.GetValueOrDefault("net", ""), attachment, CancellationToken.None).ConfigureAwait(false);
        }
        catch (RuntimeFailureException e)
        {
            NetworkLog.DetachFailed(_log, sandbox.Id, attachment.NetworkName, e.Message);
            return attachment;
        }
    }

    /// <summary>Remove's retry of a DEL still owed; the status keeps the flag until it succeeds.</summary>
    private async Task DetachNetworkOrThrowAsync(Sandbox sandbox)
    {
        if (sandbox.Status.Get().Network is not { Attached: true } attachment)
            return;
        var detached = await _network.DetachAsync(sandbox.Id, sandbox.Config, sandbox.Pins.GetValueOrDefault("net", ""), attachment, CancellationToken.None).ConfigureAwait(false);
        sandbox.Status.Update(s => s with { Network = detached });
    }
}
