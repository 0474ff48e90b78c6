using System.Text;
using Crid.Core.Configuration;
using Crid.Core.Errors;
using Crid.Linux;
using Runtime.V1;

namespace Crid.Core.Sandboxes;

/// <summary>
/// Checks a RunPodSandbox request before anything is created, naming the offending field as the
/// proto spells it. Pure logic: no host state is touched.
/// </summary>
internal static class SandboxValidator
{
    /// <summary>The kernel's limit for a hostname (HOST_NAME_MAX).</summary>
    public const int MaxHostnameBytes = 64;

    /// <summary>Upper bound for a label or annotation key plus value.</summary>
    public const int MaxLabelBytes = 4096;

    public static void Validate(RunPodSandboxRequest request, CridOptions options)
    {
        var config = request.Config ?? throw new InvalidArgumentException("config", "is required");
        var metadata = config.Metadata ?? throw new InvalidArgumentException("config.metadata", "is required");
        if (string.IsNullOrEmpty(metadata.Name))
            throw new InvalidArgumentException("config.metadata.name", "must not be empty");
        if (string.IsNullOrEmpty(metadata.Namespace))
            throw new InvalidArgumentException("config.metadata.namespace", "must not be empty");
        if (string.IsNullOrEmpty(metadata.Uid))
            throw new InvalidArgumentException("config.metadata.uid", "must not be empty");

        var handlers = options.HandlerNames();
        if (request.RuntimeHandler.Length > 0 && !handlers.Contains(request.RuntimeHandler))
            throw new InvalidArgumentException("runtime_handler",
                $"\"{Printable(request.RuntimeHandler)}\" is not a runtime handler of this daemon (configured: {(handlers.Count == 0 ? "none" : string.Join(", ", handlers))})");

        ValidateHostname(config.Hostname);
        ValidateStrings("config.labels", config.Labels);
        ValidateStrings("config.annotations", config.Annotations);

        for (var i = 0; i < config.PortMappings.Count; i++)
        {
            if (!Enum.IsDefined(config.PortMappings[i].Protocol))
                throw new InvalidArgumentException($"config.port_mappings[{i}].protocol", $"unknown protocol {(int)config.PortMappings[i].Protocol}");
        }

        var ns = config.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption();
        const string nsField = "config.linux.security_context.namespace_options";
        CheckMode($"{nsField}.network", ns.Network, NamespaceMode.Pod, NamespaceMode.Node);
        CheckMode($"{nsField}.ipc", ns.Ipc, NamespaceMode.Pod, NamespaceMode.Node);
        // TARGET names a container to share with; a sandbox has no container yet.
        CheckMode($"{nsField}.pid", ns.Pid, NamespaceMode.Pod, NamespaceMode.Container, NamespaceMode.Node);
        if (ns.UsernsOptions is { } userns)
        {
            // A user namespace per container, or another container's, is not something a sandbox can pin.
            CheckMode($"{nsField}.userns_options.mode", userns.Mode, NamespaceMode.Pod, NamespaceMode.Node);
            if (userns.Mode == NamespaceMode.Pod)
            {
                if (userns.Uids.Count == 0)
                    throw new InvalidArgumentException($"{nsField}.userns_options.uids", "a pod user namespace needs uid mappings");
                if (userns.Gids.Count == 0)
                    throw new InvalidArgumentException($"{nsField}.userns_options.gids", "a pod user namespace needs gid mappings");
                ValidateMappings($"{nsField}.userns_options.uids", userns.Uids);
                ValidateMappings($"{nsField}.userns_options.gids", userns.Gids);
            }
            // A shared pid namespace (POD) is fine with a pod user namespace: the infra process creates
            // it from inside that user namespace (InfraRequest.UserNsPath), so it is owned by it.
            if (userns.Mode != NamespaceMode.Pod && (userns.Uids.Count > 0 || userns.Gids.Count > 0))
            {
                throw new InvalidArgumentException($"{nsField}.userns_options", "ID mappings are only allowed with mode POD");
            }
        }

        if (config.Linux is { } linux)
        {
            foreach (var (name, value) in linux.Sysctls)
            {
                try
                {
                    Sysctls.Validate(name, value, hostNetwork: ns.Network == NamespaceMode.Node, hostIpc: ns.Ipc == NamespaceMode.Node);
                }
                catch (SysctlRejectedException e)
                {
                    throw new InvalidArgumentException($"config.linux.sysctls[\"{Printable(name)}\"]", e.Rule);
                }
            }
        }
    }

    private static void CheckMode(string field, NamespaceMode mode, params NamespaceMode[] allowed)
    {
        if (!Enum.IsDefined(mode))
            throw new InvalidArgumentException(field, $"unknown namespace mode {(int)mode}");
        if (!allowed.Contains(mode))
            throw new InvalidArgumentException(field, $"mode {mode.ToString().ToUpperInvariant()} is not allowed for a sandbox (allowed: {string.Join(", ", allowed.Select(a => a.ToString().ToUpperInvariant()))})");
    }

    private static void ValidateHostname(string hostname)
    {
        if (Encoding.UTF8.GetByteCount(hostname) > MaxHostnameBytes)
            throw new InvalidArgumentException("config.hostname", $"is longer than {MaxHostnameBytes} bytes");
        if (hostname.Contains('/') || hostname.Contains('\0'))
            throw new InvalidArgumentException("config.hostname", "must not contain '/' or NUL");
    }

    private static void ValidateStrings(string field, IDictionary<string, string> entries)
    {
        foreach (var (key, value) in entries)
        {
            if (key.Length == 0)
                throw new InvalidArgumentException(field, "keys must not be empty");
            if (Encoding.UTF8.GetByteCount(key) + Encoding.UTF8.GetByteCount(value) > MaxLabelBytes)
                throw new InvalidArgumentException($"{field}[\"{Printable(key)}\"]", $"key and value are longer than {MaxLabelBytes} bytes");
        }
    }

    /// <summary>
    /// The same rules the kernel applies to uid_map/gid_map (user_namespaces(7)), checked up front so
    /// the error names the CRI field; container root must be mapped or the pod could not run as root.
    /// </summary>
    private static void ValidateMappings(string field, IList<IDMapping> mappings)
    {
        const int kernelLimit = 340;
        if (mappings.Count > kernelLimit)
            throw new InvalidArgumentException(field, $"{mappings.Count} mappings exceed the kernel's limit of {kernelLimit}");
        var rootMapped = false;
        for (var i = 0; i < mappings.Count; i++)
        {
            var m = mappings[i];
            if (m.Length == 0)
                throw new InvalidArgumentException($"{field}[{i}].length", "must be greater than 0");
            if ((ulong)m.ContainerId + m.Length > uint.MaxValue || (ulong)m.HostId + m.Length > uint.MaxValue)
                throw new InvalidArgumentException($"{field}[{i}]", "start + length overflows 2^32 - 1");
            if (m.ContainerId == 0)
                rootMapped = true;
            for (var j = 0; j < i; j++)
            {
                var o = mappings[j];
                if (Overlap(m.ContainerId, m.Length, o.ContainerId, o.Length))
                    throw new InvalidArgumentException($"{field}[{i}]", $"container range overlaps {field}[{j}]");
                if (Overlap(m.HostId, m.Length, o.HostId, o.Length))
                    throw new InvalidArgumentException($"{field}[{i}]", $"host range overlaps {field}[{j}]");
            }
        }
        if (!rootMapped)
            throw new InvalidArgumentException(field, "container id 0 (root) must be mapped");
    }

    private static bool Overlap(uint a, uint alen, uint b, uint blen) =>
        (ulong)a < (ulong)b + blen && (ulong)b < (ulong)a + alen;

    /// <summary>A user string as it may appear in an error: control characters escaped, length bounded.</summary>
    internal static string Printable(string s)
    {
        var sb = new StringBuilder();
        foreach (var c in s.Length > 128 ? s[..128] : s)
            sb.Append(char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString());
        if (s.Length > 128)
            sb.Append('…');
        return sb.ToString();
    }
}
