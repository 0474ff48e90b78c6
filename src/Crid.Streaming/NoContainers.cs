using Crid.Core.Errors;

namespace Crid.Streaming;

/// <summary>
/// The container side while the daemon has no container lifecycle wired in: no container exists, so
/// every id is unknown (NotFound), which is the truth. ServerSetup registers it only when nothing
/// else provides <see cref="IContainerStreams"/>; the container lifecycle's implementation replaces it.
/// </summary>
public sealed class NoContainers : IContainerStreams
{
    public string CheckRunning(string containerId) => throw Unknown(containerId);

    public Task<int> ExecAsync(string containerId, IReadOnlyList<string> command, ContainerIo io, CancellationToken cancel) =>
        Task.FromException<int>(Unknown(containerId));

    public Task AttachAsync(string containerId, ContainerIo io, CancellationToken cancel) =>
        Task.FromException(Unknown(containerId));

    private static NotFoundException Unknown(string containerId) =>
        new($"container \"{containerId}\" not found");
}
