using Microsoft.Extensions.Logging;

namespace Crid.Images;

internal static partial class ImagesLog
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "pull {Reference}: started ({Endpoint})")]
    public static partial void PullStarted(ILogger logger, string reference, string endpoint);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "pull {Reference}: layer {Digest} {Bytes} bytes in {Milliseconds:0} ms{Resumed}")]
    public static partial void LayerPulled(ILogger logger, string reference, string digest, long bytes, double milliseconds, string resumed);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "pull {Reference}: layer {Digest} already present")]
    public static partial void LayerPresent(ILogger logger, string reference, string digest);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "pull {Reference}: done, image {ImageId}, {Bytes} bytes fetched in {Milliseconds:0} ms")]
    public static partial void PullDone(ILogger logger, string reference, string imageId, long bytes, double milliseconds);

    [LoggerMessage(EventId = 316, Level = LogLevel.Information, Message = "pull {Reference}: image {ImageId} already present and unchanged, in {Milliseconds:0.0} ms")]
    public static partial void PullPresent(ILogger logger, string reference, string imageId, double milliseconds);

    [LoggerMessage(EventId = 304, Level = LogLevel.Warning, Message = "pull {Reference}: failed: {Reason}")]
    public static partial void PullFailed(ILogger logger, string reference, string reason);

    [LoggerMessage(EventId = 305, Level = LogLevel.Warning, Message = "pull {Reference}: {Endpoint} failed, trying the next: {Reason}")]
    public static partial void EndpointFailed(ILogger logger, string reference, string endpoint, string reason);

    [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message = "image store: removed {Count} unpacked folder(s) a previous run left unfinished")]
    public static partial void RemainsRemoved(ILogger logger, int count);

    [LoggerMessage(EventId = 311, Level = LogLevel.Information, Message = "image store: collected {Count} unused layer(s)")]
    public static partial void LayersCollected(ILogger logger, int count);

    [LoggerMessage(EventId = 312, Level = LogLevel.Error, Message = "image store: {Path} is unreadable, moved to {Aside}; starting with no images: {Reason}")]
    public static partial void IndexCorrupt(ILogger logger, string path, string aside, string reason);

    [LoggerMessage(EventId = 313, Level = LogLevel.Warning, Message = "image store: image {ImageId} ({Tags}) lost a layer folder and is dropped")]
    public static partial void ImageBroken(ILogger logger, string imageId, string tags);

    [LoggerMessage(EventId = 314, Level = LogLevel.Warning, Message = "image store: hold {Path} is unreadable: {Reason}")]
    public static partial void HoldUnreadable(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 315, Level = LogLevel.Information, Message = "image {ImageId} removed ({Names})")]
    public static partial void ImageRemoved(ILogger logger, string imageId, string names);
}
