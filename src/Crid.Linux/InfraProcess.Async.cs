namespace Crid.Linux;

/// <summary>The infra process's start and kill for callers that must not block a thread-pool thread.</summary>
public static partial class InfraProcess
{
    /// <summary>
    /// <see cref="Start"/> without blocking the caller's thread: the spawn runs on its own new thread
    /// (as always), the caller awaits it, and the wait for the SIGTERM handler is a timer, not a sleep.
    /// </summary>
    public static async Task<InfraHandle> StartAsync(InfraRequest request)
    {
        string pinPath = Prepare(request);
        var spawned = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        SpawnThread(request, p => spawned.SetResult(p), e => spawned.SetException(e)).Start();
        int pid = await spawned.Task.ConfigureAwait(false);
        var handle = Pin(pid, pinPath, request.UserNsPath is not null);
        var deadline = Environment.TickCount64 + 1000;
        while (!HasSigtermHandler(pid) && Environment.TickCount64 < deadline)
        {
            await Task.Delay(1).ConfigureAwait(false);
        }

        return handle;
    }

    /// <summary>
    /// <see cref="Kill"/> without blocking the caller's thread: the reap is polled (waitpid WNOHANG)
    /// between timer waits. A pid namespace's init is gone only once every process in it is.
    /// </summary>
    public static async Task KillAsync(int pid, string pinPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(pinPath);
        if (pid > 0 && NsFiles.IsNsfs(pinPath) &&
            NsFiles.TryInode(pinPath, out ulong pinned) &&
            NsFiles.TryInode($"/proc/{pid}/ns/pid", out ulong actual) && pinned == actual &&
            Tmds.Linux.LibC.kill(pid, Tmds.Linux.LibC.SIGKILL) == 0)
        {
            for (int i = 0; i < 5000 && !TryReap(pid); i++)
            {
                await Task.Delay(1).ConfigureAwait(false);
            }
        }

        PinnedNamespace.FromPath(pinPath).Remove();
    }

    /// <summary>
    /// Reaps <paramref name="pid"/> if it is a child of ours that has exited (waitpid WNOHANG, never
    /// waiting); true when it is reaped or is not our child to reap.
    /// </summary>
    public static bool TryReapExited(int pid) => pid > 0 && TryReap(pid);
}
