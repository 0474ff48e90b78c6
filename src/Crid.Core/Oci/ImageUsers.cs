using System.Globalization;
using System.Text;
using Crid.Core.Errors;
using Crid.Linux;
using Runtime.V1;

namespace Crid.Core.Oci;

/// <summary>The identity a container's first process runs with, resolved against the image's own account files.</summary>
public sealed record ContainerUser(uint Uid, uint Gid, IReadOnlyList<uint> AdditionalGids, string? Name);

/// <summary>
/// run_as_user, run_as_group, run_as_username and the image's User, resolved in the image's
/// /etc/passwd and /etc/group as containerd's oci.WithUser and WithAdditionalGIDs do. The files are
/// read inside the container's rootfs (RESOLVE_IN_ROOT): an image cannot point them at the host's.
/// </summary>
internal static class ImageUsers
{
    private const string Sc = "config.linux.security_context";
    private const int MaxAccountFileBytes = 4 << 20;

    /// <summary>One /etc/passwd line: name:password:uid:gid:gecos:home:shell.</summary>
    internal readonly record struct PasswdEntry(string Name, uint Uid, uint Gid);

    /// <summary>One /etc/group line: name:password:gid:member,member.</summary>
    internal readonly record struct GroupEntry(string Name, uint Gid, string[] Members);

    public static ContainerUser Resolve(string rootfs, LinuxContainerSecurityContext? sc, string imageUser)
    {
        var passwd = new Lazy<List<PasswdEntry>>(() => ParsePasswd(ReadAccountFile(rootfs, "/etc/passwd")));
        var groups = new Lazy<List<GroupEntry>>(() => ParseGroup(ReadAccountFile(rootfs, "/etc/group")));

        uint uid, gid;
        string? name;
        if (sc is not null && sc.RunAsUsername.Length > 0)
        {
            if (sc.RunAsUser is not null)
                throw new InvalidArgumentException($"{Sc}.run_as_username", "cannot be given together with run_as_user");
            var entry = passwd.Value.FirstOrDefault(p => p.Name == sc.RunAsUsername);
            if (entry.Name is null)
                throw new InvalidArgumentException($"{Sc}.run_as_username",
                    $"user \"{SandboxValidatorPrintable(sc.RunAsUsername)}\" is not in the image's /etc/passwd");
            (uid, gid, name) = (entry.Uid, entry.Gid, entry.Name);
            if (sc.RunAsGroup is not null)
                gid = Id(sc.RunAsGroup.Value, $"{Sc}.run_as_group");
        }
        else if (sc?.RunAsUser is not null)
        {
            uid = Id(sc.RunAsUser.Value, $"{Sc}.run_as_user");
            var entry = passwd.Value.FirstOrDefault(p => p.Uid == uid);
            name = entry.Name;
            gid = sc.RunAsGroup is not null ? Id(sc.RunAsGroup.Value, $"{Sc}.run_as_group") : entry.Name is null ? 0 : entry.Gid;
        }
        else if (sc?.RunAsGroup is not null)
        {
            // CRI api.proto: run_as_group "should only be specified when runAsUser or RunAsUsername is specified".
            throw new InvalidArgumentException($"{Sc}.run_as_group", "is only valid together with run_as_user or run_as_username");
        }
        else
        {
            (uid, gid, name) = FromImageUser(imageUser, passwd, groups);
        }

        var policy = sc?.SupplementalGroupsPolicy ?? SupplementalGroupsPolicy.Merge;
        var additional = new SortedSet<uint> { gid };
        switch (policy)
        {
            case SupplementalGroupsPolicy.Merge:
                // The groups that list the user by name in the image (containerd's WithAdditionalGIDs).
                if (name is not null)
                {
                    foreach (var g in groups.Value.Where(g => g.Name != name && g.Members.Contains(name)))
                        additional.Add(g.Gid);
                }
                break;
            case SupplementalGroupsPolicy.Strict:
                break;
            default:
                throw new InvalidArgumentException($"{Sc}.supplemental_groups_policy", $"unknown policy {(int)policy}");
        }
        if (sc is not null)
        {
            for (var i = 0; i < sc.SupplementalGroups.Count; i++)
                additional.Add(Id(sc.SupplementalGroups[i], $"{Sc}.supplemental_groups[{i}]"));
        }
        return new ContainerUser(uid, gid, [.. additional], name);
    }

    /// <summary>image-spec config.md "User": user, uid, user:group, uid:gid, user:gid, uid:group.</summary>
    private static (uint Uid, uint Gid, string? Name) FromImageUser(string user, Lazy<List<PasswdEntry>> passwd, Lazy<List<GroupEntry>> groups)
    {
        if (user.Length == 0)
        {
            var root = passwd.Value.FirstOrDefault(p => p.Uid == 0);
            return (0, root.Name is null ? 0 : root.Gid, root.Name ?? "root");
        }
        var colon = user.IndexOf(':');
        var userPart = colon < 0 ? user : user[..colon];
        var groupPart = colon < 0 ? null : user[(colon + 1)..];

        PasswdEntry entry;
        uint uid;
        if (uint.TryParse(userPart, NumberStyles.None, CultureInfo.InvariantCulture, out uid))
        {
            entry = passwd.Value.FirstOrDefault(p => p.Uid == uid);
        }
        else
        {
            entry = passwd.Value.FirstOrDefault(p => p.Name == userPart);
            if (entry.Name is null)
                throw new FailedPreconditionException($"the image's user \"{SandboxValidatorPrintable(userPart)}\" is not in its /etc/passwd");
            uid = entry.Uid;
        }
        uint gid;
        if (groupPart is null)
        {
            gid = entry.Name is null ? 0 : entry.Gid;
        }
        else if (!uint.TryParse(groupPart, NumberStyles.None, CultureInfo.InvariantCulture, out gid))
        {
            var group = groups.Value.FirstOrDefault(g => g.Name == groupPart);
            if (group.Name is null)
                throw new FailedPreconditionException($"the image's group \"{SandboxValidatorPrintable(groupPart)}\" is not in its /etc/group");
            gid = group.Gid;
        }
        return (uid, gid, entry.Name);
    }

    /// <summary>A uid or gid from the CRI (an int64): 0 to 2^32-2 (-1 is "no id" to the kernel).</summary>
    private static uint Id(long value, string field) =>
        value is >= 0 and < uint.MaxValue ? (uint)value : throw new InvalidArgumentException(field, $"{value} is not a valid id (0 to {uint.MaxValue - 1})");

    private static string ReadAccountFile(string rootfs, string path)
    {
        try
        {
            var bytes = RootFiles.Read(rootfs, path, MaxAccountFileBytes);
            return bytes is null ? "" : Encoding.UTF8.GetString(bytes);
        }
        catch (IOException e)
        {
            throw new FailedPreconditionException($"the image's {path} cannot be read: {e.Message}", e);
        }
    }

    internal static List<PasswdEntry> ParsePasswd(string text)
    {
        var entries = new List<PasswdEntry>();
        foreach (var line in text.Split('\n'))
        {
            var f = line.TrimEnd('\r').Split(':');
            if (f.Length >= 4 && f[0].Length > 0 && !f[0].StartsWith('#')
                && uint.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var uid)
                && uint.TryParse(f[3], NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
                entries.Add(new PasswdEntry(f[0], uid, gid));
        }
        return entries;
    }

    internal static List<GroupEntry> ParseGroup(string text)
    {
        var entries = new List<GroupEntry>();
        foreach (var line in text.Split('\n'))
        {
            var f = line.TrimEnd('\r').Split(':');
            if (f.Length >= 3 && f[0].Length > 0 && !f[0].StartsWith('#')
                && uint.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
                entries.Add(new GroupEntry(f[0], gid, f.Length > 3 ? f[3].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : []));
        }
        return entries;
    }

    private static string SandboxValidatorPrintable(string s) => Sandboxes.SandboxValidator.Printable(s);
}
