using Crid.Core.Errors;

namespace Crid.Core.Containers;

/// <summary>
/// The container runtime of each runtime handler (the empty name is the default handler's): a
/// sandbox's handler decides which runtime runs its containers.
/// </summary>
public sealed class ContainerRuntimes(IReadOnlyDictionary<string, IContainerRuntime> byHandler) : IDisposable
{
    public IReadOnlyDictionary<string, IContainerRuntime> ByHandler { get; } = byHandler;

    /// <exception cref="FailedPreconditionException">the handler has no runtime (it was removed from the configuration).</exception>
    public IContainerRuntime For(string handler) =>
        ByHandler.GetValueOrDefault(handler)
        ?? throw new FailedPreconditionException($"runtime handler \"{handler}\" is not configured on this daemon any more");

    public IContainerRuntime? Find(string handler) => ByHandler.GetValueOrDefault(handler);

    /// <summary>Stops the runtimes' exit watches; containers keep running.</summary>
    public void Dispose()
    {
        foreach (var runtime in ByHandler.Values)
            (runtime as IDisposable)?.Dispose();
    }
}
