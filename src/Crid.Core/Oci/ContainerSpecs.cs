using System.Security.Cryptography;
using System.Text;
using Crid.Core.Errors;
using Crid.Core.Images;
using Runtime.V1;

namespace Crid.Core.Oci;

/// <summary>Everything a container's config.json is made of.</summary>
public sealed record ContainerSpecRequest
{
    /// <summary>The container's id; its cgroup is named after it.</summary>
    public required string Id { get; init; }

    /// <summary>CreateContainer's config, as kubelet sent it.</summary>
    public required ContainerConfig Config { get; init; }

    /// <summary>The pod the container joins (<see cref="PodSpecContext.From"/>).</summary>
    public required PodSpecContext Pod { get; init; }

    /// <summary>The image the container runs (IContainerImages.Find).</summary>
    public required ContainerImage Image { get; init; }

    /// <summary>
    /// The container's root filesystem, an absolute host path, already mounted: the image's
    /// /etc/passwd and /etc/group are read from it (inside it, never following a link out).
    /// </summary>
    public required string RootfsPath { get; init; }

    /// <summary>
    /// A folder of the container's own (deleted with it) where the image's volumes get their host
    /// folders. Needed only when the image declares volumes.
    /// </summary>
    public string? VolumesDir { get; init; }

    /// <summary>
    /// For pid mode TARGET: the pid namespace of the target container (/proc/&lt;its pid&gt;/ns/pid),
    /// resolved by the caller from namespace_options.target_id; null when it is not running in the pod.
    /// </summary>
    public string? TargetPidNamespace { get; init; }

    /// <summary>The cgroup parent when the pod gives none, so containers never nest in the daemon's own cgroup.</summary>
    public string DefaultCgroupParent { get; init; } = "/crid";

    /// <summary>pids.max for the container's cgroup (a daemon-wide setting); null leaves it unlimited.</summary>
    public long? PidsLimit { get; init; }
}

/// <summary>
/// CreateContainer's decisions, as an OCI spec for runc: the container's process, identity,
/// capabilities, mounts, devices, namespaces, cgroup and security profiles, built from the CRI
/// config, the image and the pod as containerd's CRI plugin builds them (buildLinuxSpec), limited
/// to what this host and this daemon can grant.
/// </summary>
public static partial class ContainerSpecs
{
    /// <summary>The container's config.json.</summary>
    /// <exception cref="InvalidArgumentException">a field is malformed or asks for what the pod or host cannot give; the message starts with its path.</exception>
    /// <exception cref="FailedPreconditionException">the image cannot be run as it is (its user is not in its /etc/passwd...).</exception>
    public static Spec Build(ContainerSpecRequest request, IHostFacts host)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(host);
        if (!request.RootfsPath.StartsWith('/'))
            throw new ArgumentException($"the rootfs \"{request.RootfsPath}\" must be an absolute path", nameof(request));
        var config = request.Config;
        Validate(config);
        var pod = request.Pod;
        var image = request.Image.Config;
        var sc = config.Linux?.SecurityContext;
        var privileged = sc?.Privileged ?? false;
        // CRI api.proto: a privileged container needs a privileged sandbox (kubelet never asks otherwise).
        if (privileged && !(pod.Config.Linux?.SecurityContext?.Privileged ?? false))
            throw new InvalidArgumentException($"{Sc}.privileged", $"sandbox {pod.Id} is not privileged, so its containers cannot be");
        var namespaces = sc?.NamespaceOptions ?? pod.NamespaceOptions;
        CheckNamespaces(pod, namespaces, request.TargetPidNamespace);

        var args = Command(config, image);
        var user = ImageUsers.Resolve(request.RootfsPath, sc, image.User);
        var seccomp = SecurityProfiles.Seccomp(sc, host);
        var apparmor = SecurityProfiles.AppArmor(sc, host);
        var capabilities = Capabilities(sc, privileged, host);
        var readOnlyRoot = sc?.ReadonlyRootfs ?? false;
        // Every check against the host before the one step that changes it (creating missing host
        // paths and volume folders), so a refused request leaves nothing behind.
        var devices = Devices(config, host).ToList();
        var resources = Resources(config.Linux?.Resources, host).ToList();
        var cgroupsPath = CgroupsPath(pod, request.Id, request.DefaultCgroupParent);

        var opts = new List<SpecOpt>
        {
            // Process: what runs, where, with what environment.
            SpecOpts.WithTerminal(config.Tty),
            SpecOpts.WithProcessArgs(args),
            SpecOpts.WithEnv([PodSpec.DefaultPath]),
            SpecOpts.WithEnv(["HOSTNAME=" + pod.Hostname]),
            SpecOpts.WithEnv(image.Env),
            SpecOpts.WithEnv(config.Envs.Select(e => e.Key + "=" + e.Value)),
            SpecOpts.WithCwd(WorkingDir(config, image)),
            // Identity and privileges.
            SpecOpts.WithUser(user.Uid, user.Gid),
            SpecOpts.WithAdditionalGids(user.AdditionalGids),
            SpecOpts.WithCapabilities(capabilities),
            SpecOpts.WithNoNewPrivileges(sc?.NoNewPrivs ?? false),
            SpecOpts.WithRoot(request.RootfsPath, readOnlyRoot),
            SpecOpts.WithHostname(pod.Hostname),
        };
        if (apparmor is not null)
            opts.Add(SpecOpts.WithApparmorProfile(apparmor));

        // Mounts: the defaults, the pod's files, then the CRI's and the image's volumes over them.
        opts.Add(SpecOpts.WithMounts(PodSpec.BaseMounts(pod)));
        opts.Add(SpecOpts.WithMount(SpecOpts.NewMount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", "ro")));
        // containerd: the pod's files are read-only only with a read-only root.
        opts.Add(SpecOpts.WithMounts(PodSpec.FileMounts(pod, readOnlyRoot)));
        opts.AddRange(Mounts(config, host));
        opts.AddRange(ImageVolumes(config, image, request.VolumesDir));

        // Namespaces: the pod's pins, and the pid namespace its mode names.
        opts.Add(PidNamespace(pod, namespaces, request.TargetPidNamespace));
        opts.AddRange(PodSpec.SharedNamespaces(pod));
        // A cgroup namespace hides the host's hierarchy (cgroup v2 only; runc 1.1's v1 manager has none
        // to give); a privileged container sees the host's, as with containerd.
        if (host.Cgroups.Unified && !privileged)
            opts.Add(SpecOpts.WithNamespace("cgroup"));

        // What the kernel hides or freezes under /proc and /sys: the config's lists replace the defaults.
        opts.Add(SpecOpts.WithMaskedPaths(sc is { MaskedPaths.Count: > 0 } ? sc.MaskedPaths : PodSpec.DefaultMaskedPaths));
        opts.Add(SpecOpts.WithReadonlyPaths(sc is { ReadonlyPaths.Count: > 0 } ? sc.ReadonlyPaths : PodSpec.DefaultReadonlyPaths));

        // Devices: none but runc's defaults, then the config's.
        opts.Add(SpecOpts.WithDeviceRule(new LinuxDeviceRule { Allow = false, Access = "rwm" }));
        opts.AddRange(devices);

        if (privileged)
        {
            // Docker's and containerd's privileged: every capability the daemon holds (set above), nothing
            // masked, /sys and cgroupfs writable, every host device, no seccomp or AppArmor.
            opts.Add(SpecOpts.WithMaskedPaths(null));
            opts.Add(SpecOpts.WithReadonlyPaths(null));
            opts.Add(SpecOpts.WithWritableMounts("sysfs"));
            opts.Add(SpecOpts.WithWritableMounts("cgroup"));
            opts.Add(HostDevices(host));
            opts.Add(SpecOpts.WithAllDevicesAllowed());
        }

        // cgroup: where, and how much.
        opts.Add(SpecOpts.WithCgroupsPath(cgroupsPath));
        opts.AddRange(resources);
        if (request.PidsLimit is > 0 and var pids)
            opts.Add(SpecOpts.WithPidsLimit(pids));

        // Seccomp last: the default profile depends on the final capability set.
        opts.Add(s => s.EnsureLinux().Seccomp = seccomp.IsRuntimeDefault
            ? DefaultSeccomp.Build(s.Process?.Capabilities?.Bounding ?? [])
            : seccomp.Profile);

        // Annotations: the container's own, then the keys containerd writes (which win).
        opts.Add(SpecOpts.WithAnnotations(config.Annotations.OrderBy(a => a.Key, StringComparer.Ordinal)));
        opts.Add(SpecOpts.WithAnnotations(PodSpec.PodAnnotations(pod, "container")));
        opts.Add(SpecOpts.WithAnnotation(CriAnnotations.ContainerName, config.Metadata.Name));
        opts.Add(SpecOpts.WithAnnotation(CriAnnotations.ImageName, config.Image.Image));
        return SpecOpts.Build(opts);
    }

    /// <summary>The spec as runc reads it from a bundle's config.json.</summary>
    public static byte[] Serialize(Spec spec) => SpecJson.Serialize(spec);

    /// <summary>
    /// The container's cgroup (cgroupfs driver): <c>&lt;parent&gt;/crid-&lt;id&gt;</c> under the pod's
    /// cgroup_parent, or under <paramref name="defaultParent"/> when the pod has none.
    /// </summary>
    /// <exception cref="InvalidArgumentException">the pod's parent is not a cgroupfs path (a systemd slice name).</exception>
    public static string CgroupsPath(PodSpecContext pod, string containerId, string defaultParent = "/crid")
    {
        var parent = pod.Config.Linux?.CgroupParent ?? "";
        if (parent.Length == 0)
            parent = defaultParent;
        if (!parent.StartsWith('/'))
            throw new InvalidArgumentException("sandbox_config.linux.cgroup_parent",
                $"\"{P(parent)}\" is not a cgroupfs path: crid drives runc with the cgroupfs driver (a systemd slice name needs the systemd driver)");
        return PodSpec.CgroupsPath(parent, containerId);
    }

    /// <summary>
    /// The process's argv, as kubelet and docker merge them (containerd's WithProcessArgs): a
    /// command replaces the image's entrypoint and drops its cmd; args alone replace the cmd.
    /// </summary>
    internal static List<string> Command(ContainerConfig config, ImageRuntimeConfig image)
    {
        IEnumerable<string> command = config.Command;
        IEnumerable<string> args = config.Args;
        if (config.Command.Count == 0)
        {
            if (config.Args.Count == 0)
                args = image.Cmd;
            // An entrypoint of [""] is how an image says "none" (docker `ENTRYPOINT [""]`).
            if (!(image.Entrypoint.Count == 1 && image.Entrypoint[0].Length == 0))
                command = image.Entrypoint;
        }
        List<string> argv = [.. command, .. args];
        // runtime-spec config.md "Process": args is REQUIRED on Linux and its first entry is the executable.
        if (argv.Count == 0 || argv[0].Length == 0)
            throw new InvalidArgumentException("config.command", "no command to run: neither the config nor the image gives one");
        return argv;
    }

    private static string WorkingDir(ContainerConfig config, ImageRuntimeConfig image)
    {
        if (config.WorkingDir.Length > 0)
            return config.WorkingDir;
        if (image.WorkingDir.Length > 0)
            return Clean(image.WorkingDir);
        return "/";
    }

    /// <summary>
    /// The capability set: the defaults; ALL (add) or privileged means every capability the daemon
    /// itself holds (its bounding set: this host withholds CAP_SYS_RESOURCE, so no container can
    /// have it, as containerd does); then single adds and drops, in containerd's order.
    /// </summary>
    private static List<string> Capabilities(LinuxContainerSecurityContext? sc, bool privileged, IHostFacts host)
    {
        var bounding = host.BoundingCapabilities;
        var held = bounding.ToHashSet(StringComparer.Ordinal);
        if (privileged)
            return [.. bounding];
        List<string> caps = [.. PodSpec.DefaultCapabilities.Where(held.Contains)];
        if (sc?.Capabilities is not { } c)
            return caps;
        static bool IsAll(string s) => s.Equals("ALL", StringComparison.OrdinalIgnoreCase);
        if (c.AddCapabilities.Any(IsAll))
            caps = [.. bounding];
        if (c.DropCapabilities.Any(IsAll))
            caps = [];
        for (var i = 0; i < c.AddCapabilities.Count; i++)
        {
            if (IsAll(c.AddCapabilities[i]))
                continue;
            var name = CapabilityNames.Normalize(c.AddCapabilities[i])!;
            if (!held.Contains(name))
                throw new InvalidArgumentException($"{Sc}.capabilities.add_capabilities[{i}]",
                    $"{name} is not in this daemon's own bounding set, so no container of it can have it");
            if (!caps.Contains(name))
                caps.Add(name);
        }
        foreach (var drop in c.DropCapabilities.Where(d => !IsAll(d)))
            caps.Remove(CapabilityNames.Normalize(drop)!);
        return caps;
    }

    /// <summary>
    /// A container lives in its pod: Kubernetes sets hostNetwork, hostIPC and hostPID on the pod, and
    /// kubelet hands every container the pod's modes (only pid may narrow to CONTAINER, or TARGET for
    /// an ephemeral container). A container asking for something else would escape or split its pod.
    /// </summary>
    private static void CheckNamespaces(PodSpecContext pod, NamespaceOption ns, string? targetPidNamespace)
    {
        const string field = Sc + ".namespace_options";
        var podNs = pod.NamespaceOptions;
        CheckShared($"{field}.network", ns.Network, podNs.Network, "network");
        CheckShared($"{field}.ipc", ns.Ipc, podNs.Ipc, "ipc");
        switch (ns.Pid)
        {
            case NamespaceMode.Container:
                break;
            case NamespaceMode.Pod when !pod.Pins.ContainsKey("pid"):
                throw new InvalidArgumentException($"{field}.pid",
                    $"mode POD needs the pod's pid namespace, but sandbox {pod.Id} has none (its pid mode is {Upper(podNs.Pid)})");
            case NamespaceMode.Pod:
                break;
            case NamespaceMode.Node when podNs.Pid != NamespaceMode.Node:
                throw new InvalidArgumentException($"{field}.pid",
                    $"mode NODE is only allowed in a pod with the host's pid namespace (the pod's pid mode is {Upper(podNs.Pid)})");
            case NamespaceMode.Node when pod.HasUserNamespace:
                // proc(5) can only be mounted with CAP_SYS_ADMIN over the user namespace owning the
                // pid namespace (proc_fill_super), and a bind of the host's /proc would bypass the
                // masked paths. (Kubernetes refuses hostPID with hostUsers: false as well.)
                throw new InvalidArgumentException($"{field}.pid",
                    "mode NODE cannot be used in a pod with its own user namespace: the host's /proc cannot be mounted from inside it");
            case NamespaceMode.Node:
                break;
            case NamespaceMode.Target when ns.TargetId.Length == 0:
                throw new InvalidArgumentException($"{field}.target_id", "pid mode TARGET needs the id of the container to share with");
            case NamespaceMode.Target when targetPidNamespace is null:
                throw new InvalidArgumentException($"{field}.target_id",
                    $"container \"{P(ns.TargetId)}\" is not a running container of sandbox {pod.Id}");
            case NamespaceMode.Target:
                break;
            default:
                throw new InvalidArgumentException($"{field}.pid", $"unknown namespace mode {(int)ns.Pid}");
        }

        // kubelet copies the pod's userns_options into every container's; a container cannot have a
        // user namespace of its own in a pod (api.proto UserNamespace: "POD ... a pod-level user namespace").
        if (ns.UsernsOptions is { } userns)
        {
            var podMode = podNs.UsernsOptions?.Mode ?? NamespaceMode.Node;
            if (!Enum.IsDefined(userns.Mode))
                throw new InvalidArgumentException($"{field}.userns_options.mode", $"unknown namespace mode {(int)userns.Mode}");
            if (userns.Mode != podMode)
                throw new InvalidArgumentException($"{field}.userns_options.mode",
                    $"mode {Upper(userns.Mode)} differs from the pod's {Upper(podMode)}: containers share their pod's user namespace");
            if (userns.Mode == NamespaceMode.Pod && podNs.UsernsOptions is { } p
                && ((userns.Uids.Count > 0 && !userns.Uids.Equals(p.Uids)) || (userns.Gids.Count > 0 && !userns.Gids.Equals(p.Gids))))
                throw new InvalidArgumentException($"{field}.userns_options", "the ID mappings differ from the pod's");
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

    /// <summary>runtime-spec config-linux.md "Namespaces": joined with a path, new without; absent is the host's.</summary>
    private static SpecOpt PidNamespace(PodSpecContext pod, NamespaceOption ns, string? target) => ns.Pid switch
    {
        NamespaceMode.Container => SpecOpts.WithNamespace("pid"),
        NamespaceMode.Pod => SpecOpts.WithNamespace("pid", pod.Pins["pid"]),
        NamespaceMode.Target => SpecOpts.WithNamespace("pid", target),
        _ => SpecOpts.WithoutNamespace("pid"),
    };

    /// <summary>
    /// CRI mounts: host folders and files bound at their container paths, shallowest first so that a
    /// deeper mount is not hidden under a shallower one (docker's and containerd's order).
    /// </summary>
    private static IEnumerable<SpecOpt> Mounts(ContainerConfig config, IHostFacts host)
    {
        var ordered = config.Mounts.Select((m, i) => (Mount: m, Index: i))
            .OrderBy(x => Clean(x.Mount.ContainerPath).Count(c => c == '/')).ToList();
        // A /dev of the config's own replaces everything the defaults put under /dev.
        if (ordered.Any(x => Clean(x.Mount.ContainerPath) == "/dev"))
            yield return SpecOpts.WithoutMount("/dev", below: true);
        foreach (var (m, i) in ordered)
        {
            var field = $"config.mounts[{i}]";
            string source;
            try
            {
                source = host.PrepareBindSource(m.HostPath);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new InvalidArgumentException($"{field}.host_path", $"\"{P(m.HostPath)}\" cannot be resolved or created: {e.Message}");
            }
            var options = new List<string> { "rbind" };
            SpecOpt? rootPropagation = null;
            switch (m.Propagation)
            {
                case MountPropagation.PropagationPrivate:
                    options.Add("rprivate");
                    break;
                case MountPropagation.PropagationHostToContainer:
                    // rslave receives the host's later mounts only from a shared (or slave) source mount.
                    if (host.PropagationOf(source) == Propagation.Private)
                        throw new InvalidArgumentException($"{field}.propagation",
                            $"{source} is on a private mount, so host mounts cannot propagate into the container (make it shared: mount --make-rshared)");
                    options.Add("rslave");
                    rootPropagation = s =>
                    {
                        if (s.Linux?.RootfsPropagation is not ("rshared" or "rslave"))
                            s.EnsureLinux().RootfsPropagation = "rslave";
                    };
                    break;
                case MountPropagation.PropagationBidirectional:
                    if (host.PropagationOf(source) != Propagation.Shared)
                        throw new InvalidArgumentException($"{field}.propagation",
                            $"{source} is not on a shared mount, so mounts cannot propagate both ways (make it shared: mount --make-rshared)");
                    options.Add("rshared");
                    // The container's root must be shared too, or its mounts stop at the rootfs (config-linux.md "rootfsPropagation").
                    rootPropagation = SpecOpts.WithRootfsPropagation("rshared");
                    break;
            }
            options.Add(m.Readonly ? "ro" : "rw");
            yield return SpecOpts.WithMount(new SpecMount
            {
                Destination = Clean(m.ContainerPath),
                Type = "bind",
                Source = source,
                Options = options,
            });
            if (rootPropagation is not null)
                yield return rootPropagation;
        }
    }

    /// <summary>
    /// The image's VOLUMEs in a built spec, as (path in the container, host folder) pairs: the bind
    /// mounts whose source is a folder of <paramref name="volumesDir"/>, which only
    /// <see cref="ImageVolumes"/> makes.
    /// </summary>
    public static IReadOnlyList<(string Destination, string Source)> ImageVolumeMounts(Spec spec, string volumesDir)
    {
        var prefix = volumesDir.TrimEnd('/') + "/";
        return (spec.Mounts ?? []).Where(m => m.Source is { } s && s.StartsWith(prefix, StringComparison.Ordinal))
            .Select(m => (m.Destination, m.Source!)).ToList();
    }

    /// <summary>
    /// The image's VOLUMEs that no CRI mount covers: each a folder of the container's own, bound
    /// read-write (writable even on a read-only root, as docker gives them), and gone with the container.
    /// </summary>
    private static IEnumerable<SpecOpt> ImageVolumes(ContainerConfig config, ImageRuntimeConfig image, string? volumesDir)
    {
        var covered = config.Mounts.Select(m => Clean(m.ContainerPath)).ToHashSet(StringComparer.Ordinal);
        foreach (var volume in image.Volumes.Select(v => Clean("/" + v)).Distinct().Where(v => v != "/" && !covered.Contains(v)))
        {
            if (volumesDir is null || !volumesDir.StartsWith('/'))
                throw new ArgumentException($"the image declares volume {volume}, but no absolute VolumesDir was given", nameof(volumesDir));
            // Named by a digest of the path: stable for the same volume, never a path of its own.
            var name = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(volume)))[..16];
            var source = Path.Combine(volumesDir, name);
            Directory.CreateDirectory(source, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            yield return SpecOpts.WithMount(new SpecMount
            {
                Destination = volume,
                Type = "bind",
                Source = source,
                Options = ["rbind", "rprivate", "rw"],
            });
        }
    }

    /// <summary>
    /// CRI devices: the host node (symlinks followed) recreated in the container with the host's
    /// numbers, mode and owner, and a devices-cgroup rule allowing the config's permissions on it.
    /// </summary>
    private static IEnumerable<SpecOpt> Devices(ContainerConfig config, IHostFacts host)
    {
        for (var i = 0; i < config.Devices.Count; i++)
        {
            var d = config.Devices[i];
            HostNode? node;
            try
            {
                node = host.Stat(d.HostPath);
            }
            catch (IOException e)
            {
                throw new InvalidArgumentException($"config.devices[{i}].host_path", $"\"{P(d.HostPath)}\" cannot be read: {e.Message}");
            }
            if (node is not { Type: 'c' or 'b' } n)
                throw new InvalidArgumentException($"config.devices[{i}].host_path",
                    node is null ? $"\"{P(d.HostPath)}\" does not exist" : $"\"{P(d.HostPath)}\" is not a device node");
            var access = d.Permissions.Length > 0 ? d.Permissions : "rwm";
            yield return SpecOpts.WithDevice(new LinuxDevice
            {
                Path = Clean(d.ContainerPath.Length > 0 ? d.ContainerPath : d.HostPath),
                Type = n.Type.ToString(),
                Major = n.Major,
                Minor = n.Minor,
                FileMode = n.Permissions,
                Uid = n.Uid,
                Gid = n.Gid,
            });
            yield return SpecOpts.WithDeviceRule(new LinuxDeviceRule { Allow = true, Type = n.Type.ToString(), Major = n.Major, Minor = n.Minor, Access = access });
        }
    }

    private static SpecOpt HostDevices(IHostFacts host) => s =>
    {
        var existing = (s.Linux?.Devices ?? []).Select(d => d.Path).ToHashSet(StringComparer.Ordinal);
        foreach (var d in host.HostDevices())
        {
            if (existing.Contains(d.Path))
                continue;
            SpecOpts.WithDevice(new LinuxDevice
            {
                Path = d.Path,
                Type = d.Node.Type.ToString(),
                Major = d.Node.Major,
                Minor = d.Node.Minor,
                FileMode = d.Node.Permissions,
                Uid = d.Node.Uid,
                Gid = d.Node.Gid,
            })(s);
        }
    };

    /// <summary>
    /// CPU, memory, huge pages, cgroup v2 files and oom_score_adj (containerd's WithResources and
    /// WithOOMScoreAdj), each within what this host's runc can set.
    /// </summary>
    private static IEnumerable<SpecOpt> Resources(LinuxContainerResources? r, IHostFacts host)
    {
        if (r is null)
            yield break;
        var cgroups = host.Cgroups;
        if (r.CpuPeriod != 0 || r.CpuQuota != 0 || r.CpuShares != 0 || r.CpusetCpus.Length > 0 || r.CpusetMems.Length > 0)
        {
            CheckCpuset($"{Res}.cpuset_cpus", r.CpusetCpus, cgroups.OnlineCpus, "CPUs");
            CheckCpuset($"{Res}.cpuset_mems", r.CpusetMems, cgroups.OnlineMems, "memory nodes");
            yield return SpecOpts.WithCpu(cpu =>
            {
                if (r.CpuPeriod != 0)
                    cpu.Period = (ulong)r.CpuPeriod;
                if (r.CpuQuota != 0)
                    cpu.Quota = r.CpuQuota;
                if (r.CpuShares != 0)
                    cpu.Shares = (ulong)r.CpuShares;
                if (r.CpusetCpus.Length > 0)
                    cpu.Cpus = r.CpusetCpus;
                if (r.CpusetMems.Length > 0)
                    cpu.Mems = r.CpusetMems;
            });
        }
        if (r.MemoryLimitInBytes > 0 || r.MemorySwapLimitInBytes != 0)
        {
            yield return SpecOpts.WithMemory(memory =>
            {
                if (r.MemoryLimitInBytes > 0)
                    memory.Limit = r.MemoryLimitInBytes;
                // Swap counts memory plus swap: equal to the limit means no swap at all, as kubelet
                // expects by default; the config's own value wins. Without swap accounting
                // (v1 without memsw) runc would fail to write it, so it is left out.
                if (cgroups.Swap)
                {
                    if (r.MemorySwapLimitInBytes != 0)
                        memory.Swap = r.MemorySwapLimitInBytes;
                    else if (r.MemoryLimitInBytes > 0)
                        memory.Swap = r.MemoryLimitInBytes;
                }
            });
        }
        // kubelet always sends huge page limits, also where the hugetlb controller is not mounted;
        // runc's v1 manager would then fail "cannot set hugetlb limit", so they are dropped there.
        if (r.HugepageLimits.Count > 0 && cgroups.Hugetlb)
        {
            for (var i = 0; i < r.HugepageLimits.Count; i++)
            {
                if (!cgroups.HugePageSizes.Contains(r.HugepageLimits[i].PageSize))
                    throw new InvalidArgumentException($"{Res}.hugepage_limits[{i}].page_size",
                        $"this host has no {P(r.HugepageLimits[i].PageSize)} huge pages (it has {string.Join(", ", cgroups.HugePageSizes.Order())})");
            }
            yield return SpecOpts.WithHugepageLimits(r.HugepageLimits.Select(h => new LinuxHugepageLimit { PageSize = h.PageSize, Limit = h.Limit }));
        }
        if (r.Unified.Count > 0)
        {
            if (!cgroups.Unified)
                throw new InvalidArgumentException($"{Res}.unified", "cgroup v2 files can only be set where runc uses cgroup v2; this host's runc uses cgroup v1");
            yield return SpecOpts.WithUnifiedResources(r.Unified.OrderBy(u => u.Key, StringComparer.Ordinal));
        }
        // proc(5): lowering oom_score_adj below the daemon's own needs CAP_SYS_RESOURCE, which this host
        // may withhold; runc would fail the container, so it is clamped as containerd clamps it.
        yield return SpecOpts.WithOomScoreAdj(Math.Max((int)r.OomScoreAdj, host.MinOomScoreAdj));
    }

    private static void CheckCpuset(string field, string list, string online, string what)
    {
        if (list.Length == 0)
            return;
        var asked = ParseCpuList(list)!;
        var have = ParseCpuList(online) ?? [];
        var missing = asked.Where(n => !have.Contains(n)).ToList();
        if (missing.Count > 0)
            throw new InvalidArgumentException(field, $"\"{P(list)}\" names {what} this host does not have online ({online})");
    }
}
