using Crid.Core.Containers;
using Crid.Streaming;
using Crid.Streaming.Containers;

namespace Crid.Server;

/// <summary>
/// The streaming server's container side over the container lifecycle: exec runs through the
/// container's runtime (runc exec), attach through its monitor's socket. Only a running container
/// streams; stdin reaches an attached container only when it was created with stdin (as with
/// containerd, a client's stdin is otherwise not forwarded).
/// </summary>
internal sealed class ContainerStreams(ContainerManager containers) : IContainerStreams
{
    public string CheckRunning(string containerId) => containers.RunningRuntime(containerId).Id;

    public Task<int> ExecAsync(string containerId, IReadOnlyList<string> command, ContainerIo io, CancellationToken cancel)
    {
        var (id, runtime) = containers.RunningRuntime(containerId);
        return RuntimeExec.RunAsync(runtime, id, command, io, cancel);
    }

    public Task AttachAsync(string containerId, ContainerIo io, CancellationToken cancel)
    {
        var container = containers.Get(containerId);
        var endpoints = containers.AttachEndpoints(container.Id);
        var config = container.Config;
        if (!config.Stdin && io.Stdin is not null)
            io = new ContainerIo { Stdout = io.Stdout, Stderr = io.Stderr, Tty = io.Tty, Resizes = io.Resizes };
        return ConmonAttach.RunAsync(endpoints, io, config.StdinOnce, cancel);
    }
}
