using System.Globalization;
using System.Text.RegularExpressions;
using Crid.Core.Errors;
using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.Core.Oci;

public static partial class ContainerSpecs
{
    private const string Sc = "config.linux.security_context";
    private const string Res = "config.linux.resources";

    // runc (checkProcMount) lets only these be bound over files of /proc: lxcfs's views of the host.
    private static readonly HashSet<string> ProcFilesBindable =
    [
        "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
        "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
    ];

    /// <summary>
    /// Every check of a CreateContainer config that needs neither the pod, the image nor the host:
    /// call it before anything is created (a name reserved, a rootfs mounted), so a malformed
    /// request leaves nothing behind. <see cref="Build"/> runs it again.
    /// </summary>
    /// <exception cref="InvalidArgumentException">a field is malformed; the message starts with its path.</exception>
    public static void Validate(ContainerConfig? config)
    {
        if (config is null)
            throw new InvalidArgumentException("config", "is required");
        if (config.Metadata is null || config.Metadata.Name.Length == 0)
            throw new InvalidArgumentException("config.metadata.name", "must not be empty");
        if (config.Metadata.Name.Contains('\0') || config.Metadata.Name.Contains('/'))
            throw new InvalidArgumentException("config.metadata.name", $"\"{P(config.Metadata.Name)}\" holds a NUL or a slash");
        if (config.Image is null || config.Image.Image.Length == 0)
            throw new InvalidArgumentException("config.image.image", "must not be empty");
        CheckStrings("config.command", config.Command);
        CheckStrings("config.args", config.Args);
        // runtime-spec config.md "Process": cwd MUST be an absolute path.
        if (config.WorkingDir.Length > 0 && (!config.WorkingDir.StartsWith('/') || config.WorkingDir.Contains('\0')))
            throw new InvalidArgumentException("config.working_dir", $"\"{P(config.WorkingDir)}\" is not an absolute path");
        for (var i = 0; i < config.Envs.Count; i++)
        {
            var key = config.Envs[i].Key;
            if (key.Length == 0 || key.Contains('=') || key.Contains('\0'))
                throw new InvalidArgumentException($"config.envs[{i}].key", $"\"{P(key)}\" is not a variable name (empty, or holds '=' or NUL)");
            if (config.Envs[i].Value.Contains('\0'))
                throw new InvalidArgumentException($"config.envs[{i}].value", "holds a NUL byte");
        }
        for (var i = 0; i < config.Mounts.Count; i++)
            CheckMount($"config.mounts[{i}]", config.Mounts[i]);
        for (var i = 0; i < config.Devices.Count; i++)
            CheckDevice($"config.devices[{i}]", config.Devices[i]);
        if (config.CDIDevices.Count > 0)
            throw new InvalidArgumentException("config.CDI_devices", "CDI devices are not supported by this runtime");
        if (config.Linux?.Resources is { } r)
            CheckResources(r);
        if (config.Linux?.SecurityContext is { } sc)
            CheckSecurityContext(sc);
    }

    private static void CheckStrings(string field, IList<string> values)
    {
        for (var i = 0; i < values.Count; i++)
        {
            // execve(2) takes C strings: a NUL would silently cut the argument.
            if (values[i].Contains('\0'))
                throw new InvalidArgumentException($"{field}[{i}]", "holds a NUL byte");
        }
    }

    private static void CheckMount(string field, Runtime.V1.Mount m)
    {
        if (m.Image is { Image.Length: > 0 })
            throw new InvalidArgumentException($"{field}.image", "image volumes are not supported by this runtime");
        if (!IsAbsolute(m.ContainerPath))
            throw new InvalidArgumentException($"{field}.container_path", $"\"{P(m.ContainerPath)}\" is not an absolute path");
        var destination = Clean(m.ContainerPath);
        if (destination == "/")
            throw new InvalidArgumentException($"{field}.container_path", "a mount cannot replace the container's root");
        // A bind over /proc would undo the masked and read-only paths; runc refuses it too, later and less clearly.
        if ((destination == "/proc" || destination.StartsWith("/proc/", StringComparison.Ordinal)) && !ProcFilesBindable.Contains(destination))
            throw new InvalidArgumentException($"{field}.container_path", $"\"{P(destination)}\" is in /proc, where only lxcfs-style files may be bound");
        if (!IsAbsolute(m.HostPath))
            throw new InvalidArgumentException($"{field}.host_path", $"\"{P(m.HostPath)}\" is not an absolute path");
        if (!Enum.IsDefined(m.Propagation))
            throw new InvalidArgumentException($"{field}.propagation", $"unknown propagation {(int)m.Propagation}");
        if (m.RecursiveReadOnly)
            throw new InvalidArgumentException($"{field}.recursive_read_only", "recursive read-only mounts need runc >= 1.2; this runtime's runc cannot make them");
        if (m.UidMappings.Count > 0 || m.GidMappings.Count > 0)
            throw new InvalidArgumentException($"{field}.uidMappings", "ID-mapped mounts need runc >= 1.2; this runtime's runc cannot make them");
    }

    private static void CheckDevice(string field, Device d)
    {
        if (!IsAbsolute(d.HostPath))
            throw new InvalidArgumentException($"{field}.host_path", $"\"{P(d.HostPath)}\" is not an absolute path");
        if (d.ContainerPath.Length > 0 && !IsAbsolute(d.ContainerPath))
            throw new InvalidArgumentException($"{field}.container_path", $"\"{P(d.ContainerPath)}\" is not an absolute path");
        if (d.ContainerPath.Length > 0 && !Clean(d.ContainerPath).StartsWith("/dev/", StringComparison.Ordinal))
            throw new InvalidArgumentException($"{field}.container_path", $"\"{P(d.ContainerPath)}\" is not under /dev");
        if (d.Permissions.Any(c => c is not ('r' or 'w' or 'm')) || d.Permissions.Distinct().Count() != d.Permissions.Length)
            throw new InvalidArgumentException($"{field}.permissions", $"\"{P(d.Permissions)}\" is not a combination of r, w and m");
    }

    private static void CheckResources(LinuxContainerResources r)
    {
        // The kernel's own bounds (kernel/sched: CFS period 1 ms to 1 s, quota at least 1 ms; cpu.shares 2 to 262144).
        if (r.CpuPeriod != 0 && r.CpuPeriod is < 1000 or > 1_000_000)
            throw new InvalidArgumentException($"{Res}.cpu_period", $"{r.CpuPeriod} is outside 1000 to 1000000 microseconds");
        if (r.CpuQuota is not (0 or -1) && r.CpuQuota < 1000)
            throw new InvalidArgumentException($"{Res}.cpu_quota", $"{r.CpuQuota} is neither -1 (no limit) nor at least 1000 microseconds");
        if (r.CpuShares != 0 && r.CpuShares is < 2 or > 262_144)
            throw new InvalidArgumentException($"{Res}.cpu_shares", $"{r.CpuShares} is outside 2 to 262144");
        if (r.MemoryLimitInBytes < 0)
            throw new InvalidArgumentException($"{Res}.memory_limit_in_bytes", $"{r.MemoryLimitInBytes} is negative");
        if (r.MemorySwapLimitInBytes < -1)
            throw new InvalidArgumentException($"{Res}.memory_swap_limit_in_bytes", $"{r.MemorySwapLimitInBytes} is neither -1 (unlimited) nor a size");
        if (r.MemorySwapLimitInBytes > 0 && r.MemoryLimitInBytes > 0 && r.MemorySwapLimitInBytes < r.MemoryLimitInBytes)
            throw new InvalidArgumentException($"{Res}.memory_swap_limit_in_bytes",
                $"{r.MemorySwapLimitInBytes} is below the memory limit {r.MemoryLimitInBytes} (it counts memory plus swap)");
        // proc(5) /proc/pid/oom_score_adj.
        if (r.OomScoreAdj is < -1000 or > 1000)
            throw new InvalidArgumentException($"{Res}.oom_score_adj", $"{r.OomScoreAdj} is outside -1000 to 1000");
        if (r.CpusetCpus.Length > 0 && ParseCpuList(r.CpusetCpus) is null)
            throw new InvalidArgumentException($"{Res}.cpuset_cpus", $"\"{P(r.CpusetCpus)}\" is not a list such as 0-3,7");
        if (r.CpusetMems.Length > 0 && ParseCpuList(r.CpusetMems) is null)
            throw new InvalidArgumentException($"{Res}.cpuset_mems", $"\"{P(r.CpusetMems)}\" is not a list such as 0-1");
        for (var i = 0; i < r.HugepageLimits.Count; i++)
        {
            if (!PageSize().IsMatch(r.HugepageLimits[i].PageSize))
                throw new InvalidArgumentException($"{Res}.hugepage_limits[{i}].page_size", $"\"{P(r.HugepageLimits[i].PageSize)}\" is not a size such as 2MB");
        }
        foreach (var key in r.Unified.Keys)
        {
            // A cgroup v2 interface file of the container's own cgroup: "controller.file", nothing else.
            if (!UnifiedKey().IsMatch(key))
                throw new InvalidArgumentException($"{Res}.unified[\"{P(key)}\"]", "is not a cgroup v2 file name such as memory.high");
        }
    }

    private static void CheckSecurityContext(LinuxContainerSecurityContext sc)
    {
        if (sc.Capabilities is { } caps)
        {
            CheckCapabilities($"{Sc}.capabilities.add_capabilities", caps.AddCapabilities);
            CheckCapabilities($"{Sc}.capabilities.drop_capabilities", caps.DropCapabilities);
        }
        for (var i = 0; i < sc.MaskedPaths.Count; i++)
        {
            if (!IsAbsolute(sc.MaskedPaths[i]))
                throw new InvalidArgumentException($"{Sc}.masked_paths[{i}]", $"\"{P(sc.MaskedPaths[i])}\" is not an absolute path");
        }
        for (var i = 0; i < sc.ReadonlyPaths.Count; i++)
        {
            if (!IsAbsolute(sc.ReadonlyPaths[i]))
                throw new InvalidArgumentException($"{Sc}.readonly_paths[{i}]", $"\"{P(sc.ReadonlyPaths[i])}\" is not an absolute path");
        }
        if (sc.RunAsUsername.Contains('\0') || sc.RunAsUsername.Contains(':'))
            throw new InvalidArgumentException($"{Sc}.run_as_username", $"\"{P(sc.RunAsUsername)}\" is not a user name");
    }

    private static void CheckCapabilities(string field, IList<string> names)
    {
        for (var i = 0; i < names.Count; i++)
        {
            if (!names[i].Equals("ALL", StringComparison.OrdinalIgnoreCase) && CapabilityNames.Normalize(names[i]) is null)
                throw new InvalidArgumentException($"{field}[{i}]", $"\"{P(names[i])}\" is not a Linux capability");
        }
    }

    /// <summary>cpuset(7) "List format": 0-4,9,11-12; null when malformed.</summary>
    internal static SortedSet<int>? ParseCpuList(string list)
    {
        var set = new SortedSet<int>();
        foreach (var part in list.Trim().Split(','))
        {
            var range = part.Split('-');
            if (range.Length is < 1 or > 2
                || !int.TryParse(range[0], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
                || first > 65535)
                return null;
            var last = first;
            if (range.Length == 2 && (!int.TryParse(range[1], NumberStyles.None, CultureInfo.InvariantCulture, out last) || last < first || last > 65535))
                return null;
            for (var n = first; n <= last; n++)
                set.Add(n);
        }
        return set;
    }

    private static bool IsAbsolute(string path) => path.StartsWith('/') && !path.Contains('\0');

    /// <summary>A path with "." and ".." folded and no trailing slash; ".." cannot climb above "/".</summary>
    internal static string Clean(string path)
    {
        var parts = new List<string>();
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".")
                continue;
            if (part == "..")
            {
                if (parts.Count > 0)
                    parts.RemoveAt(parts.Count - 1);
                continue;
            }
            parts.Add(part);
        }
        return "/" + string.Join('/', parts);
    }

    private static string P(string s) => SandboxValidator.Printable(s);

    [GeneratedRegex("^[1-9][0-9]*(KB|MB|GB|TB|PB)$")]
    private static partial Regex PageSize();

    [GeneratedRegex("^[a-z][a-z0-9_]*\\.[a-z0-9_.]+$")]
    private static partial Regex UnifiedKey();
}
