using Microsoft.Extensions.Logging;

namespace Crid.Server;

internal static partial class ServerLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Debug, Message = "{Method} OK in {Milliseconds:F3} ms")]
    public static partial void CallCompleted(ILogger logger, string method, double milliseconds);

    [LoggerMessage(EventId = 101, Level = LogLevel.Debug, Message = "{Method} {Status}: {Detail} in {Milliseconds:F3} ms")]
    public static partial void CallFailed(ILogger logger, string method, string status, string detail, double milliseconds);

    [LoggerMessage(EventId = 102, Level = LogLevel.Error, Message = "{Method} failed unexpectedly")]
    public static partial void CallCrashed(ILogger logger, Exception exception, string method);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "{Method} {Status}: {Detail} in {Milliseconds:F3} ms")]
    public static partial void CallRefused(ILogger logger, string method, string status, string detail, double milliseconds);

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "{Method} NotFound: {Detail} in {Milliseconds:F3} ms")]
    public static partial void CallNotFound(ILogger logger, string method, string detail, double milliseconds);

    [LoggerMessage(EventId = 105, Level = LogLevel.Warning, Message = "{Method} Unimplemented (logged once; later calls at debug): {Detail}")]
    public static partial void CallUnimplemented(ILogger logger, string method, string detail);
}
