using System.Text.Json.Serialization;

namespace Crid.Core.Oci;

// The OCI runtime spec (runtime-spec v1.1: config.md and config-linux.md) as far as crid writes or
// reads it. Properties are mutable because spec options (SpecOpts) edit one spec in turn, as
// containerd's oci.SpecOpts do; a null property is left out of config.json, which is how runc
// tells "not set" from a zero value (a memory limit of 0 is not "no limit"). The property order is
// the order config.json shows them in.

/// <summary>config.md: the top level of config.json.</summary>
public sealed class Spec
{
    [JsonPropertyName("ociVersion")] public string OciVersion { get; set; } = SpecVersion.Current;
    [JsonPropertyName("process")] public SpecProcess? Process { get; set; }
    [JsonPropertyName("root")] public SpecRoot? Root { get; set; }
    [JsonPropertyName("hostname")] public string? Hostname { get; set; }
    [JsonPropertyName("mounts")] public List<SpecMount>? Mounts { get; set; }
    [JsonPropertyName("annotations")] public Dictionary<string, string>? Annotations { get; set; }
    [JsonPropertyName("linux")] public SpecLinux? Linux { get; set; }
}

public static class SpecVersion
{
    /// <summary>The runtime-spec version written; runc 1.1 reads 1.0.x and 1.1.x specs.</summary>
    public const string Current = "1.1.0";
}

/// <summary>config.md "Process".</summary>
public sealed class SpecProcess
{
    [JsonPropertyName("terminal")] public bool Terminal { get; set; }
    [JsonPropertyName("consoleSize")] public ConsoleSize? ConsoleSize { get; set; }
    [JsonPropertyName("user")] public SpecUser User { get; set; } = new();
    [JsonPropertyName("args")] public List<string> Args { get; set; } = [];
    [JsonPropertyName("env")] public List<string>? Env { get; set; }
    [JsonPropertyName("cwd")] public string Cwd { get; set; } = "/";
    [JsonPropertyName("capabilities")] public LinuxCapabilities? Capabilities { get; set; }
    [JsonPropertyName("rlimits")] public List<PosixRlimit>? Rlimits { get; set; }
    [JsonPropertyName("noNewPrivileges")] public bool? NoNewPrivileges { get; set; }
    [JsonPropertyName("apparmorProfile")] public string? ApparmorProfile { get; set; }
    [JsonPropertyName("oomScoreAdj")] public int? OomScoreAdj { get; set; }
    [JsonPropertyName("selinuxLabel")] public string? SelinuxLabel { get; set; }
}

public sealed class ConsoleSize
{
    [JsonPropertyName("height")] public uint Height { get; set; }
    [JsonPropertyName("width")] public uint Width { get; set; }
}

/// <summary>config.md "POSIX process user".</summary>
public sealed class SpecUser
{
    [JsonPropertyName("uid")] public uint Uid { get; set; }
    [JsonPropertyName("gid")] public uint Gid { get; set; }
    [JsonPropertyName("umask")] public uint? Umask { get; set; }
    [JsonPropertyName("additionalGids")] public List<uint>? AdditionalGids { get; set; }
}

/// <summary>config.md "capabilities": sets of CAP_ names.</summary>
public sealed class LinuxCapabilities
{
    [JsonPropertyName("bounding")] public List<string>? Bounding { get; set; }
    [JsonPropertyName("effective")] public List<string>? Effective { get; set; }
    [JsonPropertyName("inheritable")] public List<string>? Inheritable { get; set; }
    [JsonPropertyName("permitted")] public List<string>? Permitted { get; set; }
    [JsonPropertyName("ambient")] public List<string>? Ambient { get; set; }
}

/// <summary>config.md "rlimits": getrlimit(2) resources such as RLIMIT_NOFILE.</summary>
public sealed class PosixRlimit
{
    [JsonPropertyName("type")] public string Type { get; set; } = "";
    [JsonPropertyName("hard")] public ulong Hard { get; set; }
    [JsonPropertyName("soft")] public ulong Soft { get; set; }
}

/// <summary>config.md "Root".</summary>
public sealed class SpecRoot
{
    [JsonPropertyName("path")] public string Path { get; set; } = "";
    [JsonPropertyName("readonly")] public bool Readonly { get; set; }
}

/// <summary>config.md "Mounts": a mount(2), or a bind when type is "bind" / options hold "bind" or "rbind".</summary>
public sealed class SpecMount
{
    [JsonPropertyName("destination")] public string Destination { get; set; } = "";
    [JsonPropertyName("type")] public string? Type { get; set; }
    [JsonPropertyName("source")] public string? Source { get; set; }
    [JsonPropertyName("options")] public List<string>? Options { get; set; }
    [JsonPropertyName("uidMappings")] public List<LinuxIdMapping>? UidMappings { get; set; }
    [JsonPropertyName("gidMappings")] public List<LinuxIdMapping>? GidMappings { get; set; }
}

/// <summary>config-linux.md.</summary>
public sealed class SpecLinux
{
    [JsonPropertyName("namespaces")] public List<LinuxNamespace>? Namespaces { get; set; }
    [JsonPropertyName("maskedPaths")] public List<string>? MaskedPaths { get; set; }
    [JsonPropertyName("readonlyPaths")] public List<string>? ReadonlyPaths { get; set; }
    [JsonPropertyName("resources")] public LinuxResources? Resources { get; set; }
    [JsonPropertyName("uidMappings")] public List<LinuxIdMapping>? UidMappings { get; set; }
    [JsonPropertyName("gidMappings")] public List<LinuxIdMapping>? GidMappings { get; set; }
    [JsonPropertyName("sysctl")] public Dictionary<string, string>? Sysctl { get; set; }
    [JsonPropertyName("cgroupsPath")] public string? CgroupsPath { get; set; }
    [JsonPropertyName("devices")] public List<LinuxDevice>? Devices { get; set; }
    [JsonPropertyName("seccomp")] public LinuxSeccomp? Seccomp { get; set; }
    [JsonPropertyName("rootfsPropagation")] public string? RootfsPropagation { get; set; }
    [JsonPropertyName("mountLabel")] public string? MountLabel { get; set; }
}

/// <summary>config-linux.md "Namespaces": joined when a path is given, created otherwise.</summary>
public sealed class LinuxNamespace
{
    [JsonPropertyName("type")] public string Type { get; set; } = "";
    [JsonPropertyName("path")] public string? Path { get; set; }
}

/// <summary>config-linux.md "User namespace mappings".</summary>
public sealed class LinuxIdMapping
{
    [JsonPropertyName("containerID")] public uint ContainerId { get; set; }
    [JsonPropertyName("hostID")] public uint HostId { get; set; }
    [JsonPropertyName("size")] public uint Size { get; set; }
}

/// <summary>config-linux.md "Devices": a node the runtime creates in the container's /dev.</summary>
public sealed class LinuxDevice
{
    [JsonPropertyName("path")] public string Path { get; set; } = "";
    [JsonPropertyName("type")] public string Type { get; set; } = "";
    [JsonPropertyName("major")] public long Major { get; set; }
    [JsonPropertyName("minor")] public long Minor { get; set; }
    [JsonPropertyName("fileMode")] public uint? FileMode { get; set; }
    [JsonPropertyName("uid")] public uint? Uid { get; set; }
    [JsonPropertyName("gid")] public uint? Gid { get; set; }
}

/// <summary>config-linux.md "Control groups": the limits runc writes into the container's cgroup.</summary>
public sealed class LinuxResources
{
    [JsonPropertyName("devices")] public List<LinuxDeviceRule>? Devices { get; set; }
    [JsonPropertyName("memory")] public LinuxMemory? Memory { get; set; }
    [JsonPropertyName("cpu")] public LinuxCpu? Cpu { get; set; }
    [JsonPropertyName("pids")] public LinuxPids? Pids { get; set; }
    [JsonPropertyName("hugepageLimits")] public List<LinuxHugepageLimit>? HugepageLimits { get; set; }
    [JsonPropertyName("unified")] public Dictionary<string, string>? Unified { get; set; }
}

/// <summary>config-linux.md "Allowed Device list": one devices-cgroup rule; null type/major/minor match all.</summary>
public sealed class LinuxDeviceRule
{
    [JsonPropertyName("allow")] public bool Allow { get; set; }
    [JsonPropertyName("type")] public string? Type { get; set; }
    [JsonPropertyName("major")] public long? Major { get; set; }
    [JsonPropertyName("minor")] public long? Minor { get; set; }
    [JsonPropertyName("access")] public string? Access { get; set; }
}

public sealed class LinuxMemory
{
    [JsonPropertyName("limit")] public long? Limit { get; set; }
    [JsonPropertyName("reservation")] public long? Reservation { get; set; }
    /// <summary>Memory plus swap (cgroup v1 memsw semantics; runc converts for v2).</summary>
    [JsonPropertyName("swap")] public long? Swap { get; set; }
    [JsonPropertyName("swappiness")] public ulong? Swappiness { get; set; }
    [JsonPropertyName("disableOOMKiller")] public bool? DisableOomKiller { get; set; }
}

public sealed class LinuxCpu
{
    [JsonPropertyName("shares")] public ulong? Shares { get; set; }
    [JsonPropertyName("quota")] public long? Quota { get; set; }
    [JsonPropertyName("period")] public ulong? Period { get; set; }
    [JsonPropertyName("cpus")] public string? Cpus { get; set; }
    [JsonPropertyName("mems")] public string? Mems { get; set; }
}

public sealed class LinuxPids
{
    [JsonPropertyName("limit")] public long Limit { get; set; }
}

public sealed class LinuxHugepageLimit
{
    [JsonPropertyName("pageSize")] public string PageSize { get; set; } = "";
    [JsonPropertyName("limit")] public ulong Limit { get; set; }
}

/// <summary>config-linux.md "Seccomp". Also the shape of a Localhost profile file.</summary>
public sealed class LinuxSeccomp
{
    [JsonPropertyName("defaultAction")] public string DefaultAction { get; set; } = "";
    [JsonPropertyName("defaultErrnoRet")] public uint? DefaultErrnoRet { get; set; }
    [JsonPropertyName("architectures")] public List<string>? Architectures { get; set; }
    [JsonPropertyName("flags")] public List<string>? Flags { get; set; }
    [JsonPropertyName("listenerPath")] public string? ListenerPath { get; set; }
    [JsonPropertyName("listenerMetadata")] public string? ListenerMetadata { get; set; }
    [JsonPropertyName("syscalls")] public List<LinuxSyscall>? Syscalls { get; set; }

    /// <summary>Docker's profile format names architectures this way; read from profiles, never written.</summary>
    [JsonPropertyName("archMap")] public List<SeccompArchMap>? ArchMap { get; set; }
}

public sealed class SeccompArchMap
{
    [JsonPropertyName("architecture")] public string Architecture { get; set; } = "";
    [JsonPropertyName("subArchitectures")] public List<string>? SubArchitectures { get; set; }
}

public sealed class LinuxSyscall
{
    [JsonPropertyName("names")] public List<string>? Names { get; set; }
    [JsonPropertyName("action")] public string Action { get; set; } = "";
    [JsonPropertyName("errnoRet")] public uint? ErrnoRet { get; set; }
    [JsonPropertyName("args")] public List<LinuxSeccompArg>? Args { get; set; }

    /// <summary>The single-name form of old Docker profiles; read from profiles, never written.</summary>
    [JsonPropertyName("name")] public string? Name { get; set; }
}

public sealed class LinuxSeccompArg
{
    [JsonPropertyName("index")] public uint Index { get; set; }
    [JsonPropertyName("value")] public ulong Value { get; set; }
    [JsonPropertyName("valueTwo")] public ulong? ValueTwo { get; set; }
    [JsonPropertyName("op")] public string Op { get; set; } = "";
}
