using Microsoft.Extensions.Logging;

namespace Crid.Runtime;

internal static partial class RuntimeLog
{
    /// <summary>With where the create's time went, in ms since the call: conmon spawned, the bundle ready, the first conmon gone (forked), runc create done.</summary>
    [LoggerMessage(EventId = 400, Level = LogLevel.Debug, Message = "container {Id} created: pid {Pid}, conmon {MonitorPid}; ms: conmon spawned {Spawned:F1}, bundle ready {Prepared:F1}, conmon forked {Forked:F1}, runc create done {Done:F1}")]
    public static partial void Created(ILogger logger, string id, int pid, int monitorPid, double spawned, double prepared, double forked, double done);

    [LoggerMessage(EventId = 410, Level = LogLevel.Debug, Message = "container {Id} started in {Ms:F1} ms")]
    public static partial void Started(ILogger logger, string id, double ms);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "creating container {Id} failed; rolled back")]
    public static partial void CreateFailed(ILogger logger, Exception exception, string id);

    [LoggerMessage(EventId = 402, Level = LogLevel.Error, Message = "rollback of container {Id}: {Step} failed")]
    public static partial void RollbackFailed(ILogger logger, Exception exception, string id, string step);

    [LoggerMessage(EventId = 403, Level = LogLevel.Debug, Message = "container {Id} exited: {ExitCode} (oom: {OomKilled})")]
    public static partial void Exited(ILogger logger, string id, int exitCode, bool oomKilled);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "exit watcher: {Reason}; rescanning {Dir}")]
    public static partial void Rescan(ILogger logger, string reason, string dir);

    [LoggerMessage(EventId = 405, Level = LogLevel.Error, Message = "exit watcher of {Dir} stopped")]
    public static partial void WatcherFailed(ILogger logger, Exception exception, string dir);

    [LoggerMessage(EventId = 406, Level = LogLevel.Error, Message = "a ContainerExited handler failed for {Id}")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string id);

    [LoggerMessage(EventId = 407, Level = LogLevel.Warning, Message = "conmon {Pid} of container {Id} did not exit after the container was deleted; killed")]
    public static partial void MonitorKilled(ILogger logger, int pid, string id);

    [LoggerMessage(EventId = 409, Level = LogLevel.Warning, Message = "container {Id} is unknown to the lifecycle (a create cut short by a crash): deleted")]
    public static partial void OrphanRemoved(ILogger logger, string id);

    [LoggerMessage(EventId = 420, Level = LogLevel.Warning, Message = "killed {Count} processes left by creates a crash cut short (conmon, runc, containers): {Pids}")]
    public static partial void OrphanMonitorsKilled(ILogger logger, int count, string pids);

    [LoggerMessage(EventId = 421, Level = LogLevel.Warning, Message = "container {Id}: removed the cgroup {Dir} that its cut-short runc create left")]
    public static partial void OrphanCgroupRemoved(ILogger logger, string id, string dir);

    [LoggerMessage(EventId = 408, Level = LogLevel.Warning, Message = "exec in container {Id} timed out after {Seconds:F1} s; its process group was killed")]
    public static partial void ExecTimedOut(ILogger logger, string id, double seconds);
}
