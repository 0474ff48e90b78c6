using Microsoft.Extensions.Logging;

namespace Crid.Core.Networking;

internal static partial class NetworkLog
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "pod network {Name} from {File} ({Plugins} plugins)")]
    public static partial void ConfigLoaded(ILogger logger, string name, string file, int plugins);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "skipped the CNI config {File}: {Reason}")]
    public static partial void ConfigSkipped(ILogger logger, string file, string reason);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "no valid CNI network config in {Dir}: pods get loopback only")]
    public static partial void NoConfig(ILogger logger, string dir);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "the CNI config folder {Dir} does not exist: pods get loopback only")]
    public static partial void ConfigDirMissing(ILogger logger, string dir);

    [LoggerMessage(EventId = 304, Level = LogLevel.Information, Message = "sandbox {Id} attached to {Network}: {Ips}")]
    public static partial void Attached(ILogger logger, string id, string network, string ips);

    [LoggerMessage(EventId = 305, Level = LogLevel.Information, Message = "sandbox {Id} detached from {Network}")]
    public static partial void Detached(ILogger logger, string id, string network);

    [LoggerMessage(EventId = 306, Level = LogLevel.Warning, Message = "CNI DEL of sandbox {Id} on {Network} failed; RemovePodSandbox will retry: {Reason}")]
    public static partial void DetachFailed(ILogger logger, string id, string network, string reason);

    [LoggerMessage(EventId = 310, Level = LogLevel.Error, Message = "CNI DEL after the failed ADD of sandbox {Id} on {Network} failed too; what the plugins set up may be left behind: {Reason}")]
    public static partial void RollbackDelFailed(ILogger logger, string id, string network, string reason);

    [LoggerMessage(EventId = 307, Level = LogLevel.Warning, Message = "CNI plugin {Plugin} ({Command}) ran past {Seconds} s and was killed")]
    public static partial void PluginKilled(ILogger logger, string plugin, string command, double seconds);

    [LoggerMessage(EventId = 308, Level = LogLevel.Debug, Message = "CNI {Command} {Plugin} for {Id}: exit {Exit} in {Milliseconds:F1} ms")]
    public static partial void PluginRan(ILogger logger, string command, string plugin, string id, int exit, double milliseconds);

    [LoggerMessage(EventId = 309, Level = LogLevel.Information, Message = "pod CIDR set to \"{Cidr}\"")]
    public static partial void PodCidrSet(ILogger logger, string cidr);
}
