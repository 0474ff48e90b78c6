namespace Crid.Linux;

/// <summary>
/// Which sysctls a pod may set: only those the kernel namespaces (net, ipc), and only in a
/// namespace of the pod's own. Pure string checks, usable without root.
/// </summary>
public static class Sysctls
{
    private const string ProcSys = "/proc/sys/";

    internal enum Kind
    {
        Net,
        Ipc,
    }

    /// <summary>Throws <see cref="SysctlRejectedException"/> naming the sysctl and the rule it breaks.</summary>
    public static void Validate(string name, string value, bool hostNetwork, bool hostIpc)
    {
        var kind = Classify(name, out _);
        if (value is null)
        {
            throw new SysctlRejectedException(name, "value is missing");
        }

        if (value.Contains('\0') || value.Contains('\n'))
        {
            throw new SysctlRejectedException(name, "value must not contain NUL or newline");
        }

        if (kind == Kind.Net && hostNetwork)
        {
            throw new SysctlRejectedException(name, "net.* sysctls need the pod's own network namespace, not the host's");
        }

        if (kind == Kind.Ipc && hostIpc)
        {
            throw new SysctlRejectedException(name, "ipc sysctls need the pod's own ipc namespace, not the host's");
        }
    }

    /// <summary>The /proc/sys file for a (valid) sysctl name, separators normalised to '/'.</summary>
    internal static string ProcPath(string name)
    {
        Classify(name, out string path);
        return path;
    }

    internal static Kind Classify(string name, out string procPath)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw new SysctlRejectedException(name ?? "", "name is empty");
        }

        if (name.Contains('\0'))
        {
            throw new SysctlRejectedException(name, "name must not contain NUL");
        }

        // A dotted name cannot address a segment holding a dot (e.g. the interface "eth0.100");
        // the slash form can, so a name containing '/' is split on '/' only.
        char sep = name.Contains('/') ? '/' : '.';
        if (name[0] == sep || name[^1] == sep)
        {
            throw new SysctlRejectedException(name, "leading or trailing separator");
        }

        string[] parts = name.Split(sep);
        foreach (string p in parts)
        {
            if (p.Length == 0)
            {
                throw new SysctlRejectedException(name, "empty segment");
            }

            if (p is "." or ".." || (sep == '.' && p.Contains('/')))
            {
                throw new SysctlRejectedException(name, "'.' and '..' segments are not allowed");
            }
        }

        procPath = ProcSys + string.Join('/', parts);
        if (!System.IO.Path.GetFullPath(procPath).StartsWith(ProcSys, StringComparison.Ordinal) ||
            System.IO.Path.GetFullPath(procPath) != procPath)
        {
            throw new SysctlRejectedException(name, "resolves outside /proc/sys");
        }

        if (parts[0] == "net" && parts.Length >= 2)
        {
            return Kind.Net;
        }

        if (parts[0] == "fs" && parts.Length >= 3 && parts[1] == "mqueue")
        {
            return Kind.Ipc;
        }

        // ipc_namespaces(7) and ipc/ipc_sysctl.c: the System V IPC limits live in the ipc namespace.
        if (parts[0] == "kernel" && parts.Length == 2 &&
            (parts[1].StartsWith("shm", StringComparison.Ordinal) || parts[1].StartsWith("msg", StringComparison.Ordinal) || parts[1] == "sem"))
        {
            return Kind.Ipc;
        }

        throw new SysctlRejectedException(name, "not a namespaced sysctl (allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)");
    }
}
