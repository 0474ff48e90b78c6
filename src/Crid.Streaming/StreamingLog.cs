using Crid.Streaming.Spdy;
using Microsoft.Extensions.Logging;

namespace Crid.Streaming;

/// <summary>The streaming server's log lines (event ids 800-899).</summary>
internal static partial class StreamingLog
{
    [LoggerMessage(EventId = 800, Level = LogLevel.Information, Message = "streaming server listening on {Url}")]
    public static partial void Listening(ILogger logger, string url);

    [LoggerMessage(EventId = 801, Level = LogLevel.Debug, Message = "{Kind} session for {Target} started ({Protocol})")]
    public static partial void SessionStarted(ILogger logger, string kind, string target, string protocol);

    [LoggerMessage(EventId = 802, Level = LogLevel.Debug, Message = "{Kind} session for {Target} ended: {Outcome}")]
    public static partial void SessionEnded(ILogger logger, string kind, string target, string outcome);

    [LoggerMessage(EventId = 803, Level = LogLevel.Debug, Message = "streaming request refused ({Status}): {Reason}")]
    public static partial void Refused(ILogger logger, int status, string reason);

    [LoggerMessage(EventId = 804, Level = LogLevel.Debug, Message = "SPDY stream {Id} opened: {Headers}")]
    public static partial void StreamOpened(ILogger logger, uint id, SpdyHeaders headers);

    [LoggerMessage(EventId = 805, Level = LogLevel.Debug, Message = "SPDY stream {Id} reset by the peer (status {Status})")]
    public static partial void StreamReset(ILogger logger, uint id, uint status);

    [LoggerMessage(EventId = 806, Level = LogLevel.Debug, Message = "SPDY peer sent GOAWAY (last stream {LastGood}, status {Status})")]
    public static partial void PeerGoAway(ILogger logger, uint lastGood, uint status);

    [LoggerMessage(EventId = 807, Level = LogLevel.Warning, Message = "SPDY protocol error, connection closed: {Problem}")]
    public static partial void ProtocolError(ILogger logger, string problem);

    [LoggerMessage(EventId = 808, Level = LogLevel.Information, Message = "streaming connection idle for {Seconds} s, closed")]
    public static partial void IdleTimeout(ILogger logger, double seconds);

    [LoggerMessage(EventId = 809, Level = LogLevel.Warning, Message = "{Kind} session for {Target}: the client did not open its streams within {Seconds} s")]
    public static partial void CreationTimeout(ILogger logger, string kind, string target, double seconds);

    [LoggerMessage(EventId = 810, Level = LogLevel.Warning, Message = "{Kind} in container {Container} failed")]
    public static partial void ContainerCallFailed(ILogger logger, Exception exception, string kind, string container);

    [LoggerMessage(EventId = 811, Level = LogLevel.Debug, Message = "port-forward to port {Port} of pod {Sandbox} (request {Request}) failed: {Problem}")]
    public static partial void ForwardFailed(ILogger logger, int port, string sandbox, string request, string problem);

    [LoggerMessage(EventId = 812, Level = LogLevel.Debug, Message = "port-forward to port {Port} of pod {Sandbox} (request {Request}) done: {Sent} bytes in, {Received} bytes out")]
    public static partial void ForwardDone(ILogger logger, int port, string sandbox, string request, long sent, long received);

    [LoggerMessage(EventId = 813, Level = LogLevel.Error, Message = "streaming session crashed")]
    public static partial void SessionCrashed(ILogger logger, Exception exception);
}
