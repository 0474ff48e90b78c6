namespace Crid.Core.Sandboxes;

/// <summary>
/// What a pod's lifecycle needs of the containers in it (the container manager implements it):
/// StopPodSandbox stops them before the pod's namespaces go, RemovePodSandbox removes them.
/// Called under the sandbox's lock, which container creation also takes: no container is
/// being added to the pod meanwhile.
/// </summary>
public interface IPodContainers
{
    /// <summary>Forcibly terminates every container of the sandbox (CRI: "they must be forcibly terminated").</summary>
    Task StopAllAsync(string sandboxId, CancellationToken cancellationToken);

    /// <summary>Stops and removes every container of the sandbox.</summary>
    Task RemoveAllAsync(string sandboxId, CancellationToken cancellationToken);
}
