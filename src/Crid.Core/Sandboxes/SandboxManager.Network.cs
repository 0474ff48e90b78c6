using Crid.Core.Errors;
using Crid.Core.Networking;

namespace Crid.Core.Sandboxes;

public sealed partial class SandboxManager
{
    /// <summary>The pod network component, for Status and UpdateRuntimeConfig.</summary>
    public PodNetwork Network => _network;

    /// <summary>Best-effort CNI DEL for Stop and recovery; true when it detached the sandbox just now.</summary>
    private bool TryDetachNetwork(Sandbox sandbox)
    {
        if (sandbox.Network is not { Attached: true } attachment)
            return false;
        try
        {
            _network.Detach(sandbox.Id, sandbox.Config, sandbox.Pins.GetValueOrDefault("net", ""), attachment);
            return true;
        }
        catch (RuntimeFailureException e)
        {
            NetworkLog.DetachFailed(_log, e, sandbox.Id, attachment.NetworkName);
            return false;
        }
    }

    /// <summary>Remove's retry of a DEL still owed; the record keeps the flag until it succeeds.</summary>
    private void DetachNetworkOrThrow(Sandbox sandbox)
    {
        if (sandbox.Network is not { Attached: true } attachment)
            return;
        _network.Detach(sandbox.Id, sandbox.Config, sandbox.Pins.GetValueOrDefault("net", ""), attachment);
        PersistRecord(sandbox);
    }
}
