using Crid.Core.Configuration;
using Crid.Linux;

namespace Crid;

internal static class SocketPermissions
{
    /// <summary>
    /// Whoever can connect to the socket can run pods as root, so only root and the configured group may (0660).
    /// </summary>
    public static void Apply(CridOptions options)
    {
        File.SetUnixFileMode(options.Listen,
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        if (options.SocketGroup.Length == 0)
            return;
        var gid = ResolveGroup(options.SocketGroup)
            ?? throw new StartupException($"socket-group \"{options.SocketGroup}\" is not a group of this host");
        HostFiles.SetGroup(options.Listen, gid);
    }

    /// <summary>Refuses, before anything is created, a socket group this host does not have.</summary>
    public static void Check(CridOptions options)
    {
        if (options.SocketGroup.Length > 0 && ResolveGroup(options.SocketGroup) is null)
            throw new StartupException($"socket-group \"{options.SocketGroup}\" is not a group of this host");
    }

    private static int? ResolveGroup(string group)
    {
        if (int.TryParse(group, out var gid) && gid >= 0)
            return gid;
        foreach (var line in File.ReadLines("/etc/group"))
        {
            var fields = line.Split(':');
            if (fields.Length >= 3 && fields[0] == group && int.TryParse(fields[2], out gid))
                return gid;
        }
        return null;
    }
}
