namespace Crid.Core.Oci;

/// <summary>
/// What a container spec depends on of the host: the daemon's own rights, the cgroup layout runc
/// will use, device nodes and the mounts under host paths. Behind an interface so the spec logic
/// is tested without root (a fake), while the daemon uses <see cref="LinuxHostFacts"/>.
/// </summary>
public interface IHostFacts
{
    /// <summary>The capabilities in the daemon's bounding set: the most a container can be given.</summary>
    IReadOnlyList<string> BoundingCapabilities { get; }

    /// <summary>
    /// The lowest oom_score_adj the daemon may give a child: -1000 with CAP_SYS_RESOURCE, else its
    /// own current value (proc(5): lowering below it needs CAP_SYS_RESOURCE).
    /// </summary>
    int MinOomScoreAdj { get; }

    CgroupFacts Cgroups { get; }

    /// <summary>The kernel filters syscalls (CONFIG_SECCOMP_FILTER).</summary>
    bool SeccompEnabled { get; }

    /// <summary>The kernel has AppArmor enabled.</summary>
    bool AppArmorEnabled { get; }

    /// <summary>stat(2) of a host path, following symlinks; null when it does not exist.</summary>
    HostNode? Stat(string path);

    /// <summary>Every device node under the host's /dev (a privileged container gets them all).</summary>
    IEnumerable<HostDevice> HostDevices();

    /// <summary>
    /// The real path of a host folder or file to bind: symlinks resolved; a path that does not
    /// exist is created as a folder (0755), as kubelet expects of the runtime.
    /// </summary>
    /// <exception cref="IOException">it could not be resolved or created.</exception>
    string PrepareBindSource(string path);

    /// <summary>The propagation of the mount that holds <paramref name="realPath"/>.</summary>
    Propagation PropagationOf(string realPath);

    /// <summary>A seccomp profile file (Localhost); null when it does not exist.</summary>
    /// <exception cref="IOException">it could not be read.</exception>
    byte[]? ReadProfile(string path);
}

/// <summary>The cgroup layout as runc sees it (it uses its v2 manager only on a pure cgroup2 /sys/fs/cgroup).</summary>
public sealed record CgroupFacts
{
    /// <summary>runc will use its cgroup v2 manager (unified mode); false for v1 and hybrid hosts.</summary>
    public bool Unified { get; init; }

    /// <summary>The hugetlb controller is available to that manager (v1: mounted; v2: enabled at the root).</summary>
    public bool Hugetlb { get; init; }

    /// <summary>Swap can be limited (v1: memory.memsw.* exists; v2: memory.swap.max does).</summary>
    public bool Swap { get; init; }

    /// <summary>The huge page sizes the kernel has, as cgroup files name them ("2MB", "1GB").</summary>
    public IReadOnlySet<string> HugePageSizes { get; init; } = new HashSet<string>();

    /// <summary>/sys/devices/system/cpu/online, e.g. "0-1".</summary>
    public string OnlineCpus { get; init; } = "0";

    /// <summary>/sys/devices/system/node/online, e.g. "0".</summary>
    public string OnlineMems { get; init; } = "0";
}

public enum Propagation { Private, Slave, Shared }

/// <param name="Type">'c', 'b', 'd' (folder), '-' (anything else).</param>
public readonly record struct HostNode(char Type, uint Major, uint Minor, uint Permissions, uint Uid, uint Gid);

public readonly record struct HostDevice(string Path, HostNode Node);
