using Microsoft.Extensions.Logging;

namespace Crid.Core.Containers;

internal static partial class ContainerLog
{
    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "container {Id} ({Name}) created in sandbox {SandboxId}")]
    public static partial void Created(ILogger logger, string id, string name, string sandboxId);

    [LoggerMessage(EventId = 501, Level = LogLevel.Information, Message = "container {Id} started")]
    public static partial void Started(ILogger logger, string id);

    [LoggerMessage(EventId = 502, Level = LogLevel.Information, Message = "container {Id} stopped")]
    public static partial void Stopped(ILogger logger, string id);

    [LoggerMessage(EventId = 503, Level = LogLevel.Information, Message = "container {Id} removed")]
    public static partial void Removed(ILogger logger, string id);

    [LoggerMessage(EventId = 504, Level = LogLevel.Information, Message = "container {Id} exited with {Code} (OOM killed: {OomKilled})")]
    public static partial void Exited(ILogger logger, string id, int code, bool oomKilled);

    [LoggerMessage(EventId = 505, Level = LogLevel.Warning, Message = "CreateContainer {Name} refused at {Step}; rolled back: {Reason}")]
    public static partial void CreateRefused(ILogger logger, string name, string step, string reason);

    [LoggerMessage(EventId = 506, Level = LogLevel.Warning, Message = "CreateContainer {Name} failed at {Step}; rolled back")]
    public static partial void CreateFailed(ILogger logger, Exception exception, string name, string step);

    [LoggerMessage(EventId = 507, Level = LogLevel.Error, Message = "rollback of container {Id}: {Step} failed")]
    public static partial void RollbackFailed(ILogger logger, Exception exception, string id, string step);

    [LoggerMessage(EventId = 508, Level = LogLevel.Warning, Message = "container {Id} failed to start: {Reason}")]
    public static partial void StartFailed(ILogger logger, string id, string reason);

    [LoggerMessage(EventId = 509, Level = LogLevel.Information, Message = "container {Id} did not stop within {Seconds} s of signal {Signal}: killing it")]
    public static partial void StopTimedOut(ILogger logger, string id, int signal, double seconds);

    [LoggerMessage(EventId = 510, Level = LogLevel.Warning, Message = "the exit of container {Id} was not recorded: {Reason}")]
    public static partial void ExitNotRecorded(ILogger logger, string id, string reason);

    [LoggerMessage(EventId = 511, Level = LogLevel.Warning, Message = "container {Id} is EXITED with an unknown exit code: {Reason}")]
    public static partial void ExitLost(ILogger logger, string id, string reason);

    [LoggerMessage(EventId = 512, Level = LogLevel.Information, Message = "recovered {Count} containers ({Running} running) in {Milliseconds:F1} ms")]
    public static partial void Recovered(ILogger logger, int count, int running, double milliseconds);

    [LoggerMessage(EventId = 513, Level = LogLevel.Warning, Message = "removed {Dir}: {Reason}")]
    public static partial void BrokenContainerRemoved(ILogger logger, string dir, string reason);

    [LoggerMessage(EventId = 514, Level = LogLevel.Warning, Message = "removed container {Id}: its sandbox {SandboxId} is gone")]
    public static partial void OrphanContainerRemoved(ILogger logger, string id, string sandboxId);

    [LoggerMessage(EventId = 515, Level = LogLevel.Warning, Message = "container {Id}: runtime handler \"{Handler}\" is not configured; its runtime state, if any, is left")]
    public static partial void NoRuntimeToDelete(ILogger logger, string id, string handler);

    [LoggerMessage(EventId = 516, Level = LogLevel.Warning, Message = "could not delete {Dir} (the next start will): {Reason}")]
    public static partial void FolderNotDeleted(ILogger logger, string dir, string reason);

    [LoggerMessage(EventId = 517, Level = LogLevel.Information, Message = "container {Id}: resources updated")]
    public static partial void ResourcesUpdated(ILogger logger, string id);
}
