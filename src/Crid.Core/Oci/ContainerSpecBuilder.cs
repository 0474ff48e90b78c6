using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Crid.Core.Errors;
using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.Core.Oci;

/// <summary>What a container brings of its own; everything else it inherits from its pod's spec.</summary>
public sealed record ContainerSpecRequest
{
    /// <summary>The container's id (also the name of its cgroup under the pod's parent).</summary>
    public required string Id { get; init; }

    /// <summary>config.metadata.name, for the io.kubernetes.cri.container-name annotation.</summary>
    public required string Name { get; init; }

    /// <summary>The container's root filesystem, an absolute path on the host.</summary>
    public required string RootfsPath { get; init; }

    /// <summary>The command and its arguments, as resolved from the image and the CRI config.</summary>
    public required IReadOnlyList<string> Args { get; init; }

    /// <summary>KEY=value entries; a key the pod's spec already has (PATH) is replaced.</summary>
    public IReadOnlyList<string> Env { get; init; } = [];

    /// <summary>An absolute path inside the container; empty means "/".</summary>
    public string WorkingDir { get; init; } = "";

    /// <summary>process.user.uid; null keeps the pod's (0).</summary>
    public uint? Uid { get; init; }

    /// <summary>process.user.gid; null keeps the pod's (0).</summary>
    public uint? Gid { get; init; }

    /// <summary>root.readonly (CRI readonly_rootfs); the pause spec's read-only root is not inherited.</summary>
    public bool ReadonlyRootfs { get; init; }
}

/// <summary>
/// Turns a sandbox and a container request into the container's OCI runtime-spec config.json:
/// the one place where a container is placed into its pod's namespaces. The pod's own spec
/// (<see cref="Sandbox.SpecPath"/>) is the template, so whatever the sandbox spec decides about
/// mounts, masks, capabilities, ID mappings and sysctls, its containers get too.
/// </summary>
public static class ContainerSpecBuilder
{
    private const string NsField = "config.linux.security_context.namespace_options";

    /// <param name="sandbox">A READY sandbox; its config.json must exist.</param>
    /// <param name="namespaces">
    /// The container's config.linux.security_context.namespace_options; null means "the pod's modes"
    /// (kubelet always sends them, and always the pod's for network and ipc).
    /// </param>
    /// <param name="container">The container's own process, root and identity.</param>
    /// <exception cref="InvalidArgumentException">the namespace options or the command cannot be honoured.</exception>
    /// <exception cref="FailedPreconditionException">the sandbox is not ready or its spec is unreadable.</exception>
    public static JsonObject Build(Sandbox sandbox, NamespaceOption? namespaces, ContainerSpecRequest container)
    {
        ArgumentNullException.ThrowIfNull(sandbox);
        ArgumentNullException.ThrowIfNull(container);
        CheckRequest(container);
        if (sandbox.Removed || sandbox.State != SandboxState.Ready)
            throw new FailedPreconditionException($"sandbox {sandbox.Id} is not ready: a container cannot join namespaces that were released");

        var pod = sandbox.NamespaceOptions;
        var ns = namespaces ?? pod;
        CheckNamespaces(sandbox, pod, ns);

        var spec = ReadSandboxSpec(sandbox);
        spec["process"] = Process(Object(spec, "process"), container);
        spec["root"] = new JsonObject { ["path"] = container.RootfsPath, ["readonly"] = container.ReadonlyRootfs };
        spec["hostname"] = sandbox.Hostname;
        spec["mounts"] = Mounts(sandbox, Array(spec, "mounts"));
        spec["annotations"] = Annotations(sandbox, container);
        spec["linux"] = Linux(sandbox, Object(spec, "linux"), ns, container);
        return spec;
    }

    /// <summary>The spec as runc reads it from a bundle's config.json.</summary>
    public static byte[] Serialize(JsonObject spec) => SandboxSpec.Serialize(spec);

    private static void CheckRequest(ContainerSpecRequest c)
    {
        ArgumentException.ThrowIfNullOrEmpty(c.Id, nameof(c.Id));
        // runtime-spec config.md "Root": on Linux the path is either absolute or relative to the
        // bundle; a container's bundle is not its pod's, so only an absolute path is unambiguous.
        if (!Path.IsPathRooted(c.RootfsPath))
            throw new ArgumentException($"the rootfs \"{c.RootfsPath}\" must be an absolute path", nameof(c.RootfsPath));
        if (c.Name.Length == 0)
            throw new InvalidArgumentException("config.metadata.name", "must not be empty");
        // runtime-spec config.md "Process": args is REQUIRED on Linux and its first entry is the executable.
        if (c.Args.Count == 0 || c.Args[0].Length == 0)
            throw new InvalidArgumentException("config.command", "no command to run: neither the config nor the image gives one");
        // runtime-spec config.md "Process": cwd MUST be an absolute path.
        if (c.WorkingDir.Length > 0 && !c.WorkingDir.StartsWith('/'))
            throw new InvalidArgumentException("config.working_dir", $"\"{SandboxValidator.Printable(c.WorkingDir)}\" is not an absolute path");
        for (var i = 0; i < c.Env.Count; i++)
        {
            if (c.Env[i].IndexOf('=') <= 0)
                throw new InvalidArgumentException($"config.envs[{i}]", $"\"{SandboxValidator.Printable(c.Env[i])}\" is not KEY=value");
        }
    }

    /// <summary>
    /// A container lives in its pod: Kubernetes sets hostNetwork, hostIPC and hostPID on the pod, and
    /// kubelet hands every container the pod's modes (only pid may narrow to CONTAINER, or TARGET for
    /// an ephemeral container). A container asking for something else would escape or split its pod.
    /// </summary>
    private static void CheckNamespaces(Sandbox sandbox, NamespaceOption pod, NamespaceOption ns)
    {
        CheckShared($"{NsField}.network", ns.Network, pod.Network, "network");
        CheckShared($"{NsField}.ipc", ns.Ipc, pod.Ipc, "ipc");

        switch (ns.Pid)
        {
            case NamespaceMode.Container:
                break;
            case NamespaceMode.Pod when !sandbox.Pins.ContainsKey("pid"):
                throw new InvalidArgumentException($"{NsField}.pid",
                    $"mode POD needs the pod's pid namespace, but sandbox {sandbox.Id} has none (its pid mode is {Upper(pod.Pid)})");
            case NamespaceMode.Pod:
                break;
            case NamespaceMode.Node when pod.Pid != NamespaceMode.Node:
                throw new InvalidArgumentException($"{NsField}.pid",
                    $"mode NODE is only allowed in a pod with the host's pid namespace (the pod's pid mode is {Upper(pod.Pid)})");
            case NamespaceMode.Node when sandbox.Pins.ContainsKey("user"):
                // proc(5) can only be mounted with CAP_SYS_ADMIN over the user namespace owning the
                // pid namespace (proc_fill_super), and a bind of the host's /proc would bypass the
                // masked paths. (Kubernetes refuses hostPID with hostUsers: false as well.)
                throw new InvalidArgumentException($"{NsField}.pid",
                    "mode NODE cannot be used in a pod with its own user namespace: the host's /proc cannot be mounted from inside it");
            case NamespaceMode.Node:
                break;
            case NamespaceMode.Target when ns.TargetId.Length == 0:
                throw new InvalidArgumentException($"{NsField}.target_id", "pid mode TARGET needs the id of the container to share with");
            case NamespaceMode.Target:
                // CRI api.proto: TARGET "targets the namespace of another container"; that container's
                // pid namespace lives in its own state, which this daemon does not keep yet.
                throw new InvalidArgumentException($"{NsField}.target_id",
                    $"container \"{SandboxValidator.Printable(ns.TargetId)}\" cannot be resolved: pid mode TARGET is not supported yet");
            default:
                throw new InvalidArgumentException($"{NsField}.pid", $"unknown namespace mode {(int)ns.Pid}");
        }

        // kubelet copies the pod's userns_options into every container's; a container cannot have a
        // user namespace of its own in a pod (api.proto UserNamespace: "POD ... a pod-level user namespace").
        if (ns.UsernsOptions is { } userns)
        {
            var podMode = pod.UsernsOptions?.Mode ?? NamespaceMode.Node;
            if (!Enum.IsDefined(userns.Mode))
                throw new InvalidArgumentException($"{NsField}.userns_options.mode", $"unknown namespace mode {(int)userns.Mode}");
            if (userns.Mode != podMode)
                throw new InvalidArgumentException($"{NsField}.userns_options.mode",
                    $"mode {Upper(userns.Mode)} differs from the pod's {Upper(podMode)}: containers share their pod's user namespace");
            if (userns.Mode == NamespaceMode.Pod && pod.UsernsOptions is { } p
                && ((userns.Uids.Count > 0 && !userns.Uids.Equals(p.Uids)) || (userns.Gids.Count > 0 && !userns.Gids.Equals(p.Gids))))
                throw new InvalidArgumentException($"{NsField}.userns_options", "the ID mappings differ from the pod's");
        }
    }

    private static void CheckShared(string field, NamespaceMode mode, NamespaceMode pod, string what)
    {
        if (!Enum.IsDefined(mode))
            throw new InvalidArgumentException(field, $"unknown namespace mode {(int)mode}");
        if (mode != pod)
            throw new InvalidArgumentException(field,
                $"mode {Upper(mode)} differs from the pod's {Upper(pod)}: every container of a pod shares the pod's {what} namespace");
    }

    private static string Upper(NamespaceMode m) => m.ToString().ToUpperInvariant();

    private static JsonObject ReadSandboxSpec(Sandbox sandbox)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllBytes(sandbox.SpecPath)) as JsonObject
                ?? throw new JsonException("the top level is not an object");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new FailedPreconditionException($"sandbox {sandbox.Id}: its spec {sandbox.SpecPath} cannot be read: {e.Message}", e);
        }
    }

    private static JsonObject Object(JsonObject spec, string key) =>
        spec[key] as JsonObject ?? throw new FailedPreconditionException($"the sandbox spec has no \"{key}\" object");

    private static JsonArray Array(JsonObject spec, string key) =>
        spec[key] as JsonArray ?? throw new FailedPreconditionException($"the sandbox spec has no \"{key}\" array");

    private static JsonObject Process(JsonObject pause, ContainerSpecRequest c)
    {
        // Capabilities, noNewPrivileges and terminal stay the pod's; args (the pod's /pause) never do.
        var process = (JsonObject)pause.DeepClone();
        process["args"] = new JsonArray([.. c.Args.Select(a => (JsonNode)a)]);
        process["env"] = Env(pause["env"] as JsonArray, c.Env);
        process["cwd"] = c.WorkingDir.Length > 0 ? c.WorkingDir : "/";
        var user = process["user"] as JsonObject ?? new JsonObject { ["uid"] = 0, ["gid"] = 0 };
        if (c.Uid is { } uid)
            user["uid"] = uid;
        if (c.Gid is { } gid)
            user["gid"] = gid;
        process["user"] = user;
        return process;
    }

    /// <summary>The pod's entries, each replaced by the container's entry for the same key, then the container's new keys.</summary>
    private static JsonArray Env(JsonArray? pod, IReadOnlyList<string> own)
    {
        static string Key(string entry) => entry[..Math.Max(0, entry.IndexOf('='))];
        var merged = new List<string>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in (pod ?? []).Select(e => e?.GetValue<string>()).OfType<string>().Concat(own))
        {
            if (index.TryGetValue(Key(entry), out var at))
            {
                merged[at] = entry;
            }
            else
            {
                index[Key(entry)] = merged.Count;
                merged.Add(entry);
            }
        }
        return new JsonArray([.. merged.Select(e => (JsonNode)e)]);
    }

    private static JsonArray Mounts(Sandbox sandbox, JsonArray pod)
    {
        var files = SandboxSpec.PodFileMounts(sandbox);
        var destinations = files.Select(m => (string)m["destination"]!).ToHashSet(StringComparer.Ordinal);
        var mounts = new JsonArray();
        foreach (var m in pod)
        {
            if (m is JsonObject o && o["destination"]?.GetValue<string>() is { } d && destinations.Contains(d))
                continue;
            mounts.Add(m?.DeepClone());
        }
        // The pod's resolv.conf and hostname, always from the sandbox's own folder: every container
        // of the pod reads the same files (kubelet writes DNS once, for the pod).
        foreach (var f in files)
            mounts.Add((JsonNode)f);
        return mounts;
    }

    private static JsonObject Annotations(Sandbox sandbox, ContainerSpecRequest c)
    {
        // The pod's own annotations stay on the sandbox spec: containerd and cri-o only pass pod
        // annotations to containers through an allow-list, and this daemon has none.
        var m = sandbox.Config.Metadata;
        return new JsonObject
        {
            [SandboxSpec.Annotations.ContainerType] = "container",
            [SandboxSpec.Annotations.SandboxId] = sandbox.Id,
            [SandboxSpec.Annotations.SandboxName] = m.Name,
            [SandboxSpec.Annotations.SandboxNamespace] = m.Namespace,
            [SandboxSpec.Annotations.SandboxUid] = m.Uid,
            [SandboxSpec.Annotations.ContainerName] = c.Name,
        };
    }

    private static JsonObject Linux(Sandbox sandbox, JsonObject pod, NamespaceOption ns, ContainerSpecRequest c)
    {
        // uidMappings/gidMappings, sysctl, maskedPaths, readonlyPaths and resources stay the pod's.
        var linux = (JsonObject)pod.DeepClone();
        var podNamespaces = pod["namespaces"] as JsonArray ?? throw new FailedPreconditionException("the sandbox spec has no linux.namespaces");
        var namespaces = new JsonArray();
        // runtime-spec config-linux.md "Namespaces": with a path the namespace is joined, without one a
        // new one is created, and an absent type is the runtime's own (the host's, for NODE).
        switch (ns.Pid)
        {
            case NamespaceMode.Container:
                namespaces.Add((JsonNode)SandboxSpec.Namespace("pid", null));
                break;
            case NamespaceMode.Pod:
                namespaces.Add((JsonNode)SandboxSpec.Namespace("pid", sandbox.Pins["pid"]));
                break;
        }
        foreach (var entry in podNamespaces.OfType<JsonObject>())
        {
            var type = entry["type"]?.GetValue<string>();
            if (type is "network" or "ipc" or "uts" or "user")
            {
                // A pod namespace without a path would give each container a new one of its own,
                // which is exactly what a pod must not do.
                if (entry["path"] is null)
                    throw new FailedPreconditionException($"the sandbox spec's {type} namespace has no path to join");
                namespaces.Add(entry.DeepClone());
            }
        }
        // Every container gets its own mount namespace: its rootfs is its own (config-linux.md "mount").
        namespaces.Add((JsonNode)SandboxSpec.Namespace("mount", null));
        linux["namespaces"] = namespaces;

        var parent = sandbox.Config.Linux?.CgroupParent ?? "";
        if (parent.Length > 0)
            linux["cgroupsPath"] = SandboxSpec.CgroupsPath(parent, c.Id);
        else
            linux.Remove("cgroupsPath");
        return linux;
    }
}
