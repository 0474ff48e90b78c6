using Crid.Core.Errors;
using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.Core.Oci;

/// <summary>
/// What a spec needs to know of its pod: the pins to join, the files to bind, the pod's config.
/// Kept apart from <see cref="Sandbox"/> so that the spec code depends on these facts only, not on
/// how the sandbox store keeps them.
/// </summary>
public sealed record PodSpecContext
{
    public required string Id { get; init; }

    public required PodSandboxConfig Config { get; init; }

    /// <summary>The pod's hostname, as its uts namespace holds it.</summary>
    public required string Hostname { get; init; }

    /// <summary>Pin paths by namespace type: net, ipc, uts, user, pid.</summary>
    public required IReadOnlyDictionary<string, string> Pins { get; init; }

    /// <summary>The sandbox's folder: resolv.conf, hostname and the shm mount point live there.</summary>
    public required string Dir { get; init; }

    public NamespaceOption NamespaceOptions => Config.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption();

    public string ResolvConfPath => Path.Combine(Dir, "resolv.conf");

    public string HostnamePath => Path.Combine(Dir, "hostname");

    /// <summary>The pod's /dev/shm tmpfs (ipc POD); with ipc NODE the host's /dev/shm is used instead.</summary>
    public string ShmPath => Path.Combine(Dir, "shm");

    public bool HasUserNamespace => Pins.ContainsKey("user");

    /// <summary>The facts of a sandbox that containers can still join.</summary>
    /// <exception cref="FailedPreconditionException">the sandbox is not ready: its pins are gone or going.</exception>
    public static PodSpecContext From(Sandbox sandbox)
    {
        ArgumentNullException.ThrowIfNull(sandbox);
        if (sandbox.Removed || sandbox.State != SandboxState.Ready)
            throw new FailedPreconditionException($"sandbox {sandbox.Id} is not ready: a container cannot join namespaces that were released");
        return Of(sandbox);
    }

    internal static PodSpecContext Of(Sandbox sandbox) => new()
    {
        Id = sandbox.Id,
        Config = sandbox.Config,
        Hostname = sandbox.Hostname,
        Pins = sandbox.Pins,
        Dir = sandbox.Dir,
    };
}

/// <summary>Annotation keys as containerd and cri-o write them, so tools reading either understand ours.</summary>
public static class CriAnnotations
{
    public const string ContainerType = "io.kubernetes.cri.container-type";
    public const string SandboxId = "io.kubernetes.cri.sandbox-id";
    public const string SandboxName = "io.kubernetes.cri.sandbox-name";
    public const string SandboxNamespace = "io.kubernetes.cri.sandbox-namespace";
    public const string SandboxUid = "io.kubernetes.cri.sandbox-uid";
    public const string SandboxLogDirectory = "io.kubernetes.cri.sandbox-log-directory";
    public const string ContainerName = "io.kubernetes.cri.container-name";
    public const string ImageName = "io.kubernetes.cri.image-name";
}

/// <summary>
/// The parts of a spec that the sandbox's config.json and every container of the pod share: the
/// defaults (containerd's populateDefaultUnixSpec), the pod's namespaces and its files.
/// </summary>
internal static class PodSpec
{
    public const string DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>Docker's and containerd's default set for a container that asks for nothing else.</summary>
    public static readonly string[] DefaultCapabilities =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ];

    /// <summary>Files of /proc and /sys that tell about (or change) the host: masked with /dev/null or an empty tmpfs.</summary>
    public static readonly string[] DefaultMaskedPaths =
    [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    ];

    public static readonly string[] DefaultReadonlyPaths =
        ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

    /// <summary>
    /// /proc, /dev, /dev/pts, /dev/mqueue, /sys and the pod's /dev/shm.
    /// </summary>
    /// <remarks>
    /// In a pod user namespace the runtime mounts from inside it, and the kernel lets a mounter
    /// create sysfs only with CAP_SYS_ADMIN over the user namespace owning its network namespace
    /// (net_current_may_mount), and mqueue only over the one owning its ipc namespace
    /// (mqueue_get_tree). The pod's own net and ipc namespaces are born in its user namespace;
    /// the host's are not, and runc 1.1 fails the container with EPERM ("mount sysfs:/sys ...
    /// operation not permitted"). So with the host's network a userns pod gets the host's /sys
    /// by a read-only bind, which needs no such right, as runc >= 1.2 does itself. The bind must
    /// be recursive: /sys's submounts are locked for a less privileged mount namespace, and a
    /// plain bind of a tree with locked children fails with EINVAL (do_loopback,
    /// has_locked_children); the submounts stay the host's, whose files uid 0 of the pod does
    /// not own. With the host's ipc there is no /dev/mqueue at all (the host may have none
    /// mounted to bind; mq_open(3) works without it).
    /// </remarks>
    public static IEnumerable<SpecMount> BaseMounts(PodSpecContext pod)
    {
        var ns = pod.NamespaceOptions;
        var userns = pod.HasUserNamespace;
        yield return SpecOpts.NewMount("/proc", "proc", "proc", "nosuid", "noexec", "nodev");
        yield return SpecOpts.NewMount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k");
        yield return SpecOpts.NewMount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620");
        if (!(userns && ns.Ipc == NamespaceMode.Node))
            yield return SpecOpts.NewMount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev");
        yield return userns && ns.Network == NamespaceMode.Node
            ? SpecOpts.NewMount("/sys", "bind", "/sys", "rbind", "ro", "nosuid", "noexec", "nodev")
            : SpecOpts.NewMount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro");
        // The host's /dev/shm belongs with the host's ipc namespace; a pod of its own gets the pod's tmpfs,
        // mounted once on the host (PodShm) so that every container of the pod shares it.
        yield return ns.Ipc == NamespaceMode.Node
            ? SpecOpts.NewMount("/dev/shm", "bind", "/dev/shm", "rbind", "nosuid", "noexec", "nodev")
            : SpecOpts.NewMount("/dev/shm", "bind", pod.ShmPath, "rbind", "nosuid", "noexec", "nodev");
    }

    /// <summary>The pod's resolv.conf and hostname: every container of the pod reads the same files (kubelet writes DNS once, for the pod).</summary>
    public static IEnumerable<SpecMount> FileMounts(PodSpecContext pod, bool readOnly)
    {
        string[] Options() => readOnly ? ["rbind", "ro", "nosuid", "nodev", "noexec"] : ["rbind", "rw", "nosuid", "nodev", "noexec"];
        yield return SpecOpts.NewMount("/etc/resolv.conf", "bind", pod.ResolvConfPath, Options());
        yield return SpecOpts.NewMount("/etc/hostname", "bind", pod.HostnamePath, Options());
    }

    /// <summary>
    /// The pod's shared namespaces: its pins of network, ipc, uts and user, in that order. A type
    /// that is absent is shared with the runtime's caller (the host's, for NODE); the mount
    /// namespace is always new (config-linux.md "mount": every rootfs is its own).
    /// </summary>
    public static IEnumerable<SpecOpt> SharedNamespaces(PodSpecContext pod)
    {
        foreach (var (pin, type) in new[] { ("net", "network"), ("ipc", "ipc"), ("uts", "uts"), ("user", "user") })
        {
            if (pod.Pins.TryGetValue(pin, out var path))
                yield return SpecOpts.WithNamespace(type, path);
        }
        yield return SpecOpts.WithNamespace("mount");
        if (pod.NamespaceOptions.UsernsOptions is { Mode: NamespaceMode.Pod } userns)
            yield return SpecOpts.WithIdMappings(Mappings(userns.Uids), Mappings(userns.Gids));
        if (pod.Config.Linux is { Sysctls.Count: > 0 } l)
            yield return SpecOpts.WithSysctls(l.Sysctls.OrderBy(s => s.Key, StringComparer.Ordinal));
    }

    /// <summary>The host uid and gid a pod user namespace maps its root (0) to; null without one (or with 0 unmapped, which the validator refuses).</summary>
    public static (uint Uid, uint Gid)? MappedRoot(NamespaceOption? ns)
    {
        if (ns?.UsernsOptions is not { Mode: NamespaceMode.Pod } userns)
            return null;
        static uint? Root(IEnumerable<IDMapping> mappings) => mappings.Where(m => m.ContainerId == 0).Select(m => (uint?)m.HostId).FirstOrDefault();
        return Root(userns.Uids) is { } uid && Root(userns.Gids) is { } gid ? (uid, gid) : null;
    }

    public static List<LinuxIdMapping> Mappings(IEnumerable<IDMapping> mappings) =>
        [.. mappings.Select(m => new LinuxIdMapping { ContainerId = m.ContainerId, HostId = m.HostId, Size = m.Length })];

    /// <summary>The cgroup of a sandbox or container under the pod's parent, as cgroupfs paths are written.</summary>
    public static string CgroupsPath(string parent, string id) => parent.TrimEnd('/') + "/crid-" + id;

    /// <summary>The io.kubernetes.cri.* keys every spec of the pod carries.</summary>
    public static IEnumerable<KeyValuePair<string, string>> PodAnnotations(PodSpecContext pod, string type)
    {
        var metadata = pod.Config.Metadata ?? new PodSandboxMetadata();
        yield return new(CriAnnotations.ContainerType, type);
        yield return new(CriAnnotations.SandboxId, pod.Id);
        yield return new(CriAnnotations.SandboxName, metadata.Name);
        yield return new(CriAnnotations.SandboxNamespace, metadata.Namespace);
        yield return new(CriAnnotations.SandboxUid, metadata.Uid);
    }
}
