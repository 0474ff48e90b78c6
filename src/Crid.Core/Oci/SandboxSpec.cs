using System.Text.Json.Nodes;
using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.Core.Oci;

/// <summary>
/// The sandbox's OCI runtime-spec (1.x) config.json: the template every container of the pod
/// derives from (see <see cref="ContainerSpecBuilder"/>), with namespace paths pointing at the pins.
/// </summary>
public static class SandboxSpec
{
    public const string OciVersion = "1.1.0";

    /// <summary>Annotation keys as containerd and cri-o write them, so tools reading either understand ours.</summary>
    public static class Annotations
    {
        public const string ContainerType = "io.kubernetes.cri.container-type";
        public const string SandboxId = "io.kubernetes.cri.sandbox-id";
        public const string SandboxName = "io.kubernetes.cri.sandbox-name";
        public const string SandboxNamespace = "io.kubernetes.cri.sandbox-namespace";
        public const string SandboxUid = "io.kubernetes.cri.sandbox-uid";
        public const string SandboxLogDirectory = "io.kubernetes.cri.sandbox-log-directory";
        public const string ContainerName = "io.kubernetes.cri.container-name";
    }

    private static readonly string[] DefaultCapabilities =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ];

    private static readonly string[] MaskedPaths =
    [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    ];

    private static readonly string[] ReadonlyPaths =
        ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

    public static JsonObject Build(Sandbox sandbox)
    {
        var config = sandbox.Config;
        var ns = sandbox.NamespaceOptions;
        var spec = new JsonObject
        {
            ["ociVersion"] = OciVersion,
            ["process"] = new JsonObject
            {
                ["terminal"] = false,
                ["user"] = new JsonObject { ["uid"] = 0, ["gid"] = 0 },
                ["args"] = new JsonArray("/pause"),
                ["env"] = new JsonArray("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                ["cwd"] = "/",
                ["capabilities"] = Capabilities(),
                ["noNewPrivileges"] = true,
            },
            ["root"] = new JsonObject { ["path"] = "rootfs", ["readonly"] = true },
            ["hostname"] = sandbox.Hostname,
            ["mounts"] = Mounts(sandbox, ns),
            ["annotations"] = SandboxAnnotations(sandbox),
            ["linux"] = Linux(sandbox, ns),
        };
        return spec;
    }

    /// <summary>
    /// A spec as indented UTF-8 JSON. Written straight to a Utf8JsonWriter: ToJsonString with a new
    /// JsonSerializerOptions each time rebuilt the options' caches on every RunPodSandbox.
    /// </summary>
    public static byte[] Serialize(JsonObject spec)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(4096);
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Indented = true }))
            spec.WriteTo(writer);
        return buffer.WrittenSpan.ToArray();
    }

    private static JsonObject Capabilities()
    {
        JsonArray Set() => new([.. DefaultCapabilities.Select(c => (JsonNode)c)]);
        return new JsonObject { ["bounding"] = Set(), ["effective"] = Set(), ["permitted"] = Set() };
    }

    private static JsonArray Mounts(Sandbox sandbox, NamespaceOption ns)
    {
        // In a pod user namespace the runtime mounts from inside it, and the kernel lets a mounter
        // create sysfs only with CAP_SYS_ADMIN over the user namespace owning its network namespace
        // (net_current_may_mount), and mqueue only over the one owning its ipc namespace
        // (mqueue_get_tree). The pod's own net and ipc namespaces are born in its user namespace;
        // the host's are not, and runc 1.1 fails the container with EPERM ("mount sysfs:/sys ...
        // operation not permitted"). So with the host's network a userns pod gets the host's /sys
        // by a read-only bind, which needs no such right, as runc >= 1.2 does itself. The bind must
        // be recursive: /sys's submounts are locked for a less privileged mount namespace, and a
        // plain bind of a tree with locked children fails with EINVAL (do_loopback,
        // has_locked_children); the submounts stay the host's, whose files uid 0 of the pod does
        // not own. With the host's ipc there is no /dev/mqueue at all (the host may have none
        // mounted to bind; mq_open(3) works without it).
        var userns = sandbox.Pins.ContainsKey("user");
        var mounts = new JsonArray(
            Mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
            Mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
            Mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"));
        if (!(userns && ns.Ipc == NamespaceMode.Node))
            mounts.Add((JsonNode)Mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"));
        mounts.Add((JsonNode)(userns && ns.Network == NamespaceMode.Node
            ? Mount("/sys", "bind", "/sys", "rbind", "ro", "nosuid", "noexec", "nodev")
            : Mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro")));
        // The host's /dev/shm belongs with the host's ipc namespace; a pod of its own gets the pod's tmpfs,
        // mounted once on the host (PodShm) so that every container of the pod shares it.
        mounts.Add((JsonNode)(ns.Ipc == NamespaceMode.Node
            ? Mount("/dev/shm", "bind", "/dev/shm", "rbind", "nosuid", "noexec", "nodev")
            : Mount("/dev/shm", "bind", sandbox.ShmPath, "rbind", "nosuid", "noexec", "nodev")));
        foreach (var file in PodFileMounts(sandbox))
            mounts.Add((JsonNode)file);
        return mounts;
    }

    /// <summary>The pod's resolv.conf and hostname, read-only bind mounts shared by the sandbox and its containers.</summary>
    internal static JsonObject[] PodFileMounts(Sandbox sandbox) =>
    [
        Mount("/etc/resolv.conf", "bind", Path.Combine(sandbox.Dir, "resolv.conf"), "rbind", "ro", "nosuid", "nodev", "noexec"),
        Mount("/etc/hostname", "bind", Path.Combine(sandbox.Dir, "hostname"), "rbind", "ro", "nosuid", "nodev", "noexec"),
    ];

    internal static JsonObject Mount(string destination, string type, string source, params string[] options) => new()
    {
        ["destination"] = destination,
        ["type"] = type,
        ["source"] = source,
        ["options"] = new JsonArray([.. options.Select(o => (JsonNode)o)]),
    };

    private static JsonObject SandboxAnnotations(Sandbox sandbox)
    {
        var annotations = new JsonObject();
        foreach (var (key, value) in sandbox.Config.Annotations.OrderBy(a => a.Key, StringComparer.Ordinal))
            annotations[key] = value;
        var metadata = sandbox.Config.Metadata;
        annotations[Annotations.ContainerType] = "sandbox";
        annotations[Annotations.SandboxId] = sandbox.Id;
        annotations[Annotations.SandboxName] = metadata.Name;
        annotations[Annotations.SandboxNamespace] = metadata.Namespace;
        annotations[Annotations.SandboxUid] = metadata.Uid;
        annotations[Annotations.SandboxLogDirectory] = sandbox.Config.LogDirectory;
        return annotations;
    }

    private static JsonObject Linux(Sandbox sandbox, NamespaceOption ns)
    {
        var namespaces = new JsonArray();
        // runtime-spec config-linux.md: a namespace with a path is joined, without one it is created;
        // a type that is absent is shared with the runtime's caller (here: the host's, for NODE).
        if (ns.Pid != NamespaceMode.Node)
            namespaces.Add((JsonNode)Namespace("pid", sandbox.Pins.GetValueOrDefault("pid")));
        if (sandbox.Pins.TryGetValue("net", out var net))
            namespaces.Add((JsonNode)Namespace("network", net));
        if (sandbox.Pins.TryGetValue("ipc", out var ipc))
            namespaces.Add((JsonNode)Namespace("ipc", ipc));
        if (sandbox.Pins.TryGetValue("uts", out var uts))
            namespaces.Add((JsonNode)Namespace("uts", uts));
        if (sandbox.Pins.TryGetValue("user", out var user))
            namespaces.Add((JsonNode)Namespace("user", user));
        namespaces.Add((JsonNode)Namespace("mount", null));

        var linux = new JsonObject
        {
            ["namespaces"] = namespaces,
            ["maskedPaths"] = new JsonArray([.. MaskedPaths.Select(p => (JsonNode)p)]),
            ["readonlyPaths"] = new JsonArray([.. ReadonlyPaths.Select(p => (JsonNode)p)]),
            ["resources"] = new JsonObject
            {
                ["devices"] = new JsonArray(new JsonObject { ["allow"] = false, ["access"] = "rwm" }),
            },
        };
        if (ns.UsernsOptions is { Mode: NamespaceMode.Pod } userns)
        {
            linux["uidMappings"] = Mappings(userns.Uids);
            linux["gidMappings"] = Mappings(userns.Gids);
        }
        if (sandbox.Config.Linux is { } l)
        {
            if (l.Sysctls.Count > 0)
            {
                var sysctl = new JsonObject();
                foreach (var (key, value) in l.Sysctls.OrderBy(s => s.Key, StringComparer.Ordinal))
                    sysctl[key] = value;
                linux["sysctl"] = sysctl;
            }
            if (l.CgroupParent.Length > 0)
                linux["cgroupsPath"] = CgroupsPath(l.CgroupParent, sandbox.Id);
        }
        return linux;
    }

    /// <summary>The sandbox's cgroup under the pod's parent, as cgroupfs paths are written.</summary>
    internal static string CgroupsPath(string parent, string id) => parent.TrimEnd('/') + "/crid-" + id;

    internal static JsonObject Namespace(string type, string? path)
    {
        var entry = new JsonObject { ["type"] = type };
        if (path is not null)
            entry["path"] = path;
        return entry;
    }

    private static JsonArray Mappings(IEnumerable<IDMapping> mappings) =>
        new([.. mappings.Select(m => (JsonNode)new JsonObject
        {
            ["containerID"] = m.ContainerId,
            ["hostID"] = m.HostId,
            ["size"] = m.Length,
        })]);
}
