namespace Crid.Core.Configuration;

/// <summary>
/// Every configuration key, shared by the command line (<c>--key</c>) and the YAML file (<c>key:</c>),
/// so the two can never drift apart and <c>--help</c> lists exactly what is accepted.
/// </summary>
internal enum OptionKind { Path, String, LogLevel, StringList, PathList, PositiveNumber, Registries, OptionalPath, HandlerList, Count, IpAddress, Port }

internal sealed record OptionKey(string Name, OptionKind Kind, string Help, Func<CridOptions, string> Show, Func<CridOptions, object, CridOptions> Apply);

internal static class OptionKeys
{
    /// <summary>A day: the largest number of seconds a PositiveNumber key takes.</summary>
    public const int MaxSeconds = 86400;

    public static readonly string[] LogLevels = ["trace", "debug", "info", "warning", "error", "critical", "none"];

    public static readonly OptionKey[] All =
    [
        new("listen", OptionKind.Path, "Unix socket the CRI gRPC server listens on",
            o => o.Listen, (o, v) => o with { Listen = (string)v }),
        new("state-dir", OptionKind.Path, "folder holding sandbox records and specs",
            o => o.StateDir, (o, v) => o with { StateDir = (string)v }),
        new("namespaces-dir", OptionKind.Path, "folder under which pod namespaces are pinned (<dir>/<type>ns/<uuid>)",
            o => o.NamespacesDir, (o, v) => o with { NamespacesDir = (string)v }),
        new("log-level", OptionKind.LogLevel, "one of " + string.Join(", ", LogLevels),
            o => o.LogLevel, (o, v) => o with { LogLevel = (string)v }),
        new("socket-group", OptionKind.String, "group (name or gid) that owns the socket; empty: root's",
            o => o.SocketGroup, (o, v) => o with { SocketGroup = (string)v }),
        new("runtime-handlers", OptionKind.HandlerList, "runtime handlers accepted besides the default: name (runs runtime-path) or name=/path/to/runc-compatible-binary; comma-separated on the command line",
            o => string.Join(",", o.RuntimeHandlers), (o, v) => o with { RuntimeHandlers = (IReadOnlyList<string>)v }),
        new("cni-conf-dir", OptionKind.Path, "folder of CNI network configs; the first valid .conflist/.conf/.json by name is the pod network",
            o => o.CniConfDir, (o, v) => o with { CniConfDir = (string)v }),
        new("cni-bin-dir", OptionKind.PathList, "folders searched for CNI plugins, in order; comma-separated on the command line",
            o => string.Join(",", o.CniBinDirs), (o, v) => o with { CniBinDirs = (IReadOnlyList<string>)v }),
        new("cni-timeout", OptionKind.PositiveNumber, "seconds a CNI plugin may run before it is killed and the call fails",
            o => o.CniTimeoutSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), (o, v) => o with { CniTimeoutSeconds = (double)v }),
        new("runtime-path", OptionKind.Path, "the OCI runtime (runc or a runc-compatible binary) of the default runtime handler",
            o => o.RuntimePath, (o, v) => o with { RuntimePath = (string)v }),
        new("runtime-root", OptionKind.Path, "folder of the runtime's state and the monitors' exit files and attach sockets, one subfolder per handler (short: socket paths must fit in 108 bytes)",
            o => o.RuntimeRoot, (o, v) => o with { RuntimeRoot = (string)v }),
        new("conmon-path", OptionKind.Path, "conmon, each container's monitor",
            o => o.ConmonPath, (o, v) => o with { ConmonPath = (string)v }),
        new("default-cgroup-parent", OptionKind.Path, "cgroup (cgroupfs path) of containers whose pod names no cgroup_parent",
            o => o.DefaultCgroupParent, (o, v) => o with { DefaultCgroupParent = (string)v }),
        new("pids-limit", OptionKind.Count, "pids.max of each container's cgroup; 0: unlimited",
            o => o.PidsLimit.ToString(System.Globalization.CultureInfo.InvariantCulture), (o, v) => o with { PidsLimit = (long)v }),
        new("registries", OptionKind.Registries, "registry remaps, mirrors and plain-HTTP registries: a list of {prefix, location, insecure, mirrors}; config file only",
            o => o.Registries.Count == 0 ? "" : string.Join(",", o.Registries.Select(r => r.Location is null ? r.Prefix : $"{r.Prefix}={r.Location}")),
            (o, v) => o with { Registries = (IReadOnlyList<RegistryEntry>)v }),
        new("registry-credentials", OptionKind.OptionalPath, "Docker-style JSON file ({\"auths\": {host: {auth}}}) of default registry credentials",
            o => o.RegistryCredentials, (o, v) => o with { RegistryCredentials = (string)v }),
        new("pull-idle-timeout", OptionKind.PositiveNumber, "seconds a registry may send nothing before the pull fails",
            o => o.PullIdleTimeoutSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), (o, v) => o with { PullIdleTimeoutSeconds = (double)v }),
        new("streaming-address", OptionKind.IpAddress, "IP address the streaming server (exec, attach, port-forward) listens on",
            o => o.StreamingAddress, (o, v) => o with { StreamingAddress = (string)v }),
        new("streaming-port", OptionKind.Port, "TCP port of the streaming server; 0 picks a free one",
            o => o.StreamingPort.ToString(System.Globalization.CultureInfo.InvariantCulture), (o, v) => o with { StreamingPort = (int)v }),
        new("streaming-idle-timeout", OptionKind.PositiveNumber, "seconds a streaming connection may stay silent before it is closed",
            o => o.StreamingIdleTimeoutSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), (o, v) => o with { StreamingIdleTimeoutSeconds = (double)v }),
        new("events-queue-capacity", OptionKind.Count, "events a GetContainerEvents client may fall behind before its stream is ended with RESOURCE_EXHAUSTED; 0: 4096",
            o => o.EventsQueueCapacity.ToString(System.Globalization.CultureInfo.InvariantCulture), (o, v) => o with { EventsQueueCapacity = (long)v }),
    ];

    public static OptionKey? Find(string name) => Array.Find(All, k => k.Name == name);
}
