using Crid.Core.Errors;
using Crid.Core.Oci;
using Runtime.V1;

namespace Crid.Core.Containers;

public sealed partial class ContainerManager
{
    /// <summary>
    /// ExecSync: runs <paramref name="command"/> in the running container and returns its output and
    /// exit code. A timeout kills the command and fails the call with DeadlineExceeded, as
    /// containerd answers it (kubelet's exec probes count that as a probe timeout).
    /// </summary>
    /// <exception cref="FailedPreconditionException">the container is not running.</exception>
    /// <exception cref="DeadlineExceededException">the command outlived <paramref name="timeoutSeconds"/>.</exception>
    public async Task<ExecSyncResult> ExecSyncAsync(string idOrPrefix, IReadOnlyList<string> command, long timeoutSeconds, CancellationToken cancel)
    {
        CheckCommand(command);
        if (timeoutSeconds < 0)
            throw new InvalidArgumentException("timeout", $"{timeoutSeconds} is negative");
        var (container, runtime) = Running(idOrPrefix);
        var timeout = TimeSpan.FromSeconds(Math.Min(timeoutSeconds, int.MaxValue / 1000));
        var result = await runtime.ExecSyncAsync(new ExecSyncRequest { Id = container.Id, Command = command, Timeout = timeout }, cancel).ConfigureAwait(false);
        if (result.TimedOut)
            throw new DeadlineExceededException($"command {Quote(command)} in container {container.Id} timed out after {timeoutSeconds} s; it was killed");
        return result;
    }

    /// <summary>The streaming server's exec: an interactive command in the running container.</summary>
    /// <exception cref="FailedPreconditionException">the container is not running.</exception>
    public Task<IExecSession> ExecAsync(string idOrPrefix, ExecRequest request, CancellationToken cancel)
    {
        CheckCommand(request.Command);
        var (container, runtime) = Running(idOrPrefix);
        return runtime.ExecAsync(request with { Id = container.Id }, cancel);
    }

    /// <summary>The full id and the runtime of a running container, for the streaming server's exec.</summary>
    /// <exception cref="FailedPreconditionException">the container is not running.</exception>
    public (string Id, IContainerRuntime Runtime) RunningRuntime(string idOrPrefix)
    {
        var (container, runtime) = Running(idOrPrefix);
        return (container.Id, runtime);
    }

    /// <summary>Where the container's monitor listens for attach and terminal resizes.</summary>
    /// <exception cref="FailedPreconditionException">the container is not running.</exception>
    public ContainerEndpoints AttachEndpoints(string idOrPrefix)
    {
        var (container, runtime) = Running(idOrPrefix);
        return runtime.Endpoints(container.Id);
    }

    /// <summary>ReopenContainerLog: the monitor reopens the log file (kubelet rotated it by renaming).</summary>
    /// <exception cref="FailedPreconditionException">the container is not running: no monitor writes its log.</exception>
    public Task ReopenLogAsync(string idOrPrefix, CancellationToken cancel)
    {
        var (container, runtime) = Running(idOrPrefix);
        return runtime.ReopenLogAsync(container.Id, cancel);
    }

    /// <summary>
    /// UpdateContainerResources: the new limits are applied to the container's cgroup (runc update)
    /// and kept in its status (ContainerStatus.resources). Fields left unset stay as they are.
    /// </summary>
    /// <exception cref="FailedPreconditionException">the container has exited: it has no cgroup to update.</exception>
    public async Task UpdateResourcesAsync(string idOrPrefix, LinuxContainerResources? resources, CancellationToken cancel)
    {
        var container = Get(idOrPrefix);
        if (resources is null)
            return;
        var update = ContainerSpecs.ResourcesUpdate(resources, _host);
        await container.Lock.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            var state = container.Status.Get().State;
            if (container.Removed || state is not (ContainerState.Created or ContainerState.Running))
                throw new FailedPreconditionException($"container {container.Id} is {state.ToString().ToLowerInvariant()}: only a created or running container has resources to update");
            await _runtimes.For(container.RuntimeHandler).UpdateResourcesAsync(container.Id, update, cancel).ConfigureAwait(false);
            container.Status.Update(s => s with { Resources = Merge(s.Resources, resources) });
            ContainerLog.ResourcesUpdated(_log, container.Id);
        }
        finally
        {
            container.Lock.Release();
        }
    }

    /// <summary>The resources as they now are: the update's set fields over the previous ones (runc keeps what an update leaves out).</summary>
    private static LinuxContainerResources Merge(LinuxContainerResources? before, LinuxContainerResources update)
    {
        var merged = before?.Clone() ?? new LinuxContainerResources();
        if (update.CpuPeriod != 0) merged.CpuPeriod = update.CpuPeriod;
        if (update.CpuQuota != 0) merged.CpuQuota = update.CpuQuota;
        if (update.CpuShares != 0) merged.CpuShares = update.CpuShares;
        if (update.MemoryLimitInBytes != 0) merged.MemoryLimitInBytes = update.MemoryLimitInBytes;
        if (update.MemorySwapLimitInBytes != 0) merged.MemorySwapLimitInBytes = update.MemorySwapLimitInBytes;
        if (update.OomScoreAdj != 0) merged.OomScoreAdj = update.OomScoreAdj;
        if (update.CpusetCpus.Length > 0) merged.CpusetCpus = update.CpusetCpus;
        if (update.CpusetMems.Length > 0) merged.CpusetMems = update.CpusetMems;
        if (update.HugepageLimits.Count > 0)
        {
            merged.HugepageLimits.Clear();
            merged.HugepageLimits.Add(update.HugepageLimits);
        }
        foreach (var (key, value) in update.Unified)
            merged.Unified[key] = value;
        return merged;
    }

    private (Container Container, IContainerRuntime Runtime) Running(string idOrPrefix)
    {
        var container = Get(idOrPrefix);
        var state = container.Status.Get().State;
        if (container.Removed || state != ContainerState.Running)
            throw new FailedPreconditionException($"container {container.Id} is not running (it is {state.ToString().ToLowerInvariant()})");
        return (container, _runtimes.For(container.RuntimeHandler));
    }

    private static void CheckCommand(IReadOnlyList<string> command)
    {
        if (command.Count == 0 || command[0].Length == 0)
            throw new InvalidArgumentException("cmd", "a command is required");
        for (var i = 0; i < command.Count; i++)
        {
            if (command[i].Contains('\0'))
                throw new InvalidArgumentException($"cmd[{i}]", "holds a NUL byte");
        }
    }

    private static string Quote(IReadOnlyList<string> command)
    {
        var text = string.Join(' ', command);
        return "\"" + Sandboxes.SandboxValidator.Printable(text.Length > 80 ? text[..80] + "..." : text) + "\"";
    }
}
