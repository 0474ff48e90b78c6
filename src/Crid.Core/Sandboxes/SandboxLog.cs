using Microsoft.Extensions.Logging;

namespace Crid.Core.Sandboxes;

internal static partial class SandboxLog
{
    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "sandbox {Id} ({Name}) is ready")]
    public static partial void Started(ILogger logger, string id, string name);

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "sandbox {Id} stopped")]
    public static partial void Stopped(ILogger logger, string id);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "sandbox {Id} removed")]
    public static partial void Removed(ILogger logger, string id);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "RunPodSandbox {Name} failed at {Step}; rolled back")]
    public static partial void RunFailed(ILogger logger, Exception exception, string name, string step);

    [LoggerMessage(EventId = 205, Level = LogLevel.Warning, Message = "RunPodSandbox {Name} refused at {Step}; rolled back: {Reason}")]
    public static partial void RunRefused(ILogger logger, string name, string step, string reason);

    [LoggerMessage(EventId = 206, Level = LogLevel.Warning, Message = "the infra process {Pid} of sandbox {Id} exited: the sandbox is NOTREADY")]
    public static partial void InfraExited(ILogger logger, int pid, string id);

    [LoggerMessage(EventId = 207, Level = LogLevel.Information, Message = "the infra process of sandbox {Id} exited while it was being removed: {Reason}")]
    public static partial void InfraExitNotRecorded(ILogger logger, string id, string reason);

    [LoggerMessage(EventId = 204, Level = LogLevel.Error, Message = "rollback of sandbox {Id}: {Step} failed")]
    public static partial void RollbackFailed(ILogger logger, Exception exception, string id, string step);

    [LoggerMessage(EventId = 210, Level = LogLevel.Information, Message = "recovered {Count} sandboxes ({Ready} ready) in {Milliseconds:F1} ms")]
    public static partial void Recovered(ILogger logger, int count, int ready, double milliseconds);

    [LoggerMessage(EventId = 211, Level = LogLevel.Warning, Message = "removed the pin {Path}: crid made it for a sandbox that no longer exists")]
    public static partial void OrphanPinRemoved(ILogger logger, string path);

    [LoggerMessage(EventId = 212, Level = LogLevel.Warning, Message = "removed {Dir}: {Reason}")]
    public static partial void BrokenSandboxRemoved(ILogger logger, string dir, string reason);

    [LoggerMessage(EventId = 213, Level = LogLevel.Warning, Message = "sandbox {Id} lost its pins while the daemon was down; it is NOTREADY")]
    public static partial void LostPins(ILogger logger, string id);

    [LoggerMessage(EventId = 215, Level = LogLevel.Information, Message = "left {Count} uuid-named pin(s) under {Dir} alone: crid did not make them")]
    public static partial void ForeignPinsKept(ILogger logger, int count, string dir);

    [LoggerMessage(EventId = 214, Level = LogLevel.Warning, Message = "killed process {Pid} of the orphaned pid namespace {Path}")]
    public static partial void OrphanInfraKilled(ILogger logger, int pid, string path);

    [LoggerMessage(EventId = 216, Level = LogLevel.Warning, Message = "released the pod network {Network} of sandbox {Id} (CNI DEL): its Run was cut short before the sandbox was recorded")]
    public static partial void OrphanNetworkReleased(ILogger logger, string id, string network);

    [LoggerMessage(EventId = 217, Level = LogLevel.Error, Message = "could not release the pod network {Network} of sandbox {Id}, whose Run was cut short; the next start tries again: {Reason}")]
    public static partial void OrphanNetworkNotReleased(ILogger logger, string id, string network, string reason);

    [LoggerMessage(EventId = 218, Level = LogLevel.Warning, Message = "sandbox {Id} is NOTREADY but still holds pins or a network (a Stop cut short, or an infra process that died): releasing them")]
    public static partial void StopFinished(ILogger logger, string id);

    [LoggerMessage(EventId = 219, Level = LogLevel.Warning, Message = "killed the CNI plugin process {Pid} still working for sandbox {Id}, whose Run was cut short")]
    public static partial void OrphanPluginKilled(ILogger logger, int pid, string id);
}
