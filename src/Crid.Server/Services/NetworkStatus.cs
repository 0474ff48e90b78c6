using Crid.Core.Networking;
using Runtime.V1;

namespace Crid.Server.Services;

/// <summary>
/// What Status reports as NetworkReady: true only while the CNI folder holds a valid pod network.
/// Without one pods get loopback only, and saying so keeps kubelet's non-host-network pods off this node.
/// </summary>
internal sealed class NetworkStatus(PodNetwork network)
{
    public RuntimeCondition Condition()
    {
        var readiness = network.Readiness();
        return new RuntimeCondition
        {
            Type = "NetworkReady",
            Status = readiness.Ready,
            Reason = readiness.Reason,
            Message = readiness.Message,
        };
    }
}
