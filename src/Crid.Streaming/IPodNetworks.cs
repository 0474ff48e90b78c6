using Crid.Core.Errors;
using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.Streaming;

/// <summary>Where port-forward dials a pod's ports.</summary>
public interface IPodNetworks
{
    /// <summary>
    /// The full sandbox id and the nsfs path of the pod's network namespace, or a null path for a pod
    /// on the host's network. Throws <see cref="NotFoundException"/> for an unknown sandbox and
    /// <see cref="FailedPreconditionException"/> for one that is not ready.
    /// </summary>
    (string SandboxId, string? NetNamespace) Find(string sandboxId);
}

/// <summary>The sandboxes the daemon runs: their pinned network namespaces.</summary>
public sealed class SandboxNetworks(SandboxManager sandboxes) : IPodNetworks
{
    public (string SandboxId, string? NetNamespace) Find(string sandboxId)
    {
        var sandbox = sandboxes.Get(sandboxId);
        if (sandbox.State != SandboxState.Ready)
            throw new FailedPreconditionException($"sandbox \"{sandbox.Id}\" is not ready");
        if (sandbox.NamespaceOptions.Network == NamespaceMode.Node)
            return (sandbox.Id, null);
        return sandbox.Pins.TryGetValue("net", out var pin)
            ? (sandbox.Id, pin)
            : throw new FailedPreconditionException($"sandbox \"{sandbox.Id}\" has no network namespace");
    }
}
