namespace Crid.Core.Sandboxes;

/// <summary>
/// Host calls that wait inside (PodNamespaces.Create waits for its namespace workers) run here, on a
/// dedicated thread of their own, while the caller awaits: a thread-pool thread never blocks, so a
/// burst of calls on two cores cannot starve the pool that serves gRPC and reads CNI plugins' output.
/// A thread costs tens of microseconds next to the milliseconds of the call.
/// </summary>
internal static class BlockingCalls
{
    public static Task<T> RunAsync<T>(Func<T> work) =>
        Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning | TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);
}
