using Runtime.V1;

namespace Crid.Server.Services;

/// <summary>
/// What Status reports as NetworkReady. Until pod networking exists, pods get loopback only, and
/// saying so is the honest answer: kubelet then keeps non-host-network pods off this node.
/// </summary>
internal sealed class NetworkStatus
{
    public RuntimeCondition Condition() => new()
    {
        Type = "NetworkReady",
        Status = false,
        Reason = "NetworkPluginNotReady",
        Message = "crid has no pod network plugin yet: pods get a loopback device only",
    };
}
