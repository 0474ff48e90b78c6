namespace Crid.Core.Stats;

/// <summary>Which cgroup manager runc uses, and so where a container's numbers are.</summary>
public enum CgroupMode
{
    /// <summary>cgroup v1 only: one hierarchy per controller (or group of them) under /sys/fs/cgroup.</summary>
    Legacy,

    /// <summary>v1 controllers plus a controller-less cgroup2 mount at /sys/fs/cgroup/unified: runc uses its v1 manager.</summary>
    Hybrid,

    /// <summary>/sys/fs/cgroup itself is cgroup2: runc uses its v2 manager.</summary>
    Unified,
}

/// <summary>The folders of one cgroup, per hierarchy it is read from; a null folder is a hierarchy the host lacks.</summary>
public sealed record CgroupDirs
{
    public required CgroupMode Mode { get; init; }

    /// <summary>The cgroupfs path the folders were resolved from (as the spec's cgroupsPath writes it).</summary>
    public required string Path { get; init; }

    /// <summary>v1 cpuacct's folder (cpuacct.usage).</summary>
    public string? Cpuacct { get; init; }

    /// <summary>v1 memory's folder (memory.usage_in_bytes, memory.stat, memory.limit_in_bytes).</summary>
    public string? Memory { get; init; }

    /// <summary>v1 pids' folder (pids.current).</summary>
    public string? Pids { get; init; }

    /// <summary>The cgroup2 folder: everything in Unified mode; in Hybrid mode only cpu.stat and cgroup.procs are there.</summary>
    public string? Unified { get; init; }
}

/// <summary>
/// Where runc puts a cgroup, read from the mount table the way runc reads it (runc 1.1,
/// libcontainer/cgroups): the v2 manager only when /sys/fs/cgroup itself is cgroup2
/// (IsCgroup2UnifiedMode), else the v1 manager, which in hybrid mode also places the container in
/// the cgroup2 mount at /sys/fs/cgroup/unified. An absolute cgroupsPath is taken from each
/// hierarchy's mount point; a relative one is below the cgroup runc itself runs in (v1), or below
/// that cgroup's parent (v2) — runc is the daemon's grandchild through conmon, so the daemon's own.
/// </summary>
public sealed class CgroupLayout
{
    private readonly Dictionary<string, string> _v1Mounts;
    private readonly Dictionary<string, string> _ownPaths;

    private CgroupLayout(CgroupMode mode, Dictionary<string, string> v1Mounts, string? unifiedMount, Dictionary<string, string> ownPaths)
    {
        Mode = mode;
        _v1Mounts = v1Mounts;
        UnifiedMount = unifiedMount;
        _ownPaths = ownPaths;
    }

    public CgroupMode Mode { get; }

    /// <summary>v1 controllers and where their hierarchy is mounted ("cpu" and "cpuacct" may share one).</summary>
    public IReadOnlyDictionary<string, string> V1Mounts => _v1Mounts;

    /// <summary>The cgroup2 mount: /sys/fs/cgroup (Unified), /sys/fs/cgroup/unified (Hybrid), or none.</summary>
    public string? UnifiedMount { get; }

    /// <summary>The layout of this host, for the daemon's own process.</summary>
    public static CgroupLayout FromHost() =>
        Parse(File.ReadAllLines("/proc/self/mountinfo"), File.ReadAllLines("/proc/self/cgroup"));

    /// <summary>
    /// The layout that <paramref name="mountinfo"/> (proc(5) /proc/self/mountinfo) and
    /// <paramref name="selfCgroup"/> (/proc/self/cgroup) describe. Mount points are prefixed with
    /// <paramref name="hostRoot"/> (tests point it at a fixture tree).
    /// </summary>
    public static CgroupLayout Parse(IEnumerable<string> mountinfo, IEnumerable<string> selfCgroup, string hostRoot = "")
    {
        var mounts = Crid.Linux.MountTable.Parse(mountinfo).ToList();
        // The last mount at a point hides earlier ones, as runc's lookups see it.
        var unified = mounts.LastOrDefault(m => m.MountPoint == "/sys/fs/cgroup").FsType == "cgroup2";
        var v1 = new Dictionary<string, string>(StringComparer.Ordinal);
        string? cgroup2 = null;
        foreach (var m in mounts)
        {
            if (m.FsType == "cgroup2" && (m.MountPoint == "/sys/fs/cgroup" || m.MountPoint == "/sys/fs/cgroup/unified" || cgroup2 is null))
                cgroup2 = m.MountPoint;
            if (m.FsType != "cgroup" || unified)
                continue;
            foreach (var option in m.SuperOptions.Split(','))
            {
                // name=systemd is a named hierarchy without a controller: nothing to read there.
                if (option is "rw" or "ro" || option.Contains('=') || option.StartsWith("noprefix", StringComparison.Ordinal) || option.StartsWith("clone_children", StringComparison.Ordinal) || option == "xattr")
                    continue;
                v1[option] = hostRoot + m.MountPoint;
            }
        }
        var mode = unified ? CgroupMode.Unified : cgroup2 is not null ? CgroupMode.Hybrid : CgroupMode.Legacy;
        var own = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in selfCgroup)
        {
            // hierarchy-ID:controller-list:cgroup-path (cgroups(7)); v2 is "0::/path".
            var first = line.IndexOf(':');
            var second = first < 0 ? -1 : line.IndexOf(':', first + 1);
            if (second < 0)
                continue;
            var path = line[(second + 1)..];
            var controllers = line[(first + 1)..second];
            if (controllers.Length == 0)
                own[""] = path;
            foreach (var c in controllers.Split(',', StringSplitOptions.RemoveEmptyEntries))
                own[c] = path;
        }
        return new CgroupLayout(mode, v1, cgroup2 is null ? null : hostRoot + cgroup2, own);
    }

    /// <summary>The folders of the cgroup runc makes for <paramref name="cgroupsPath"/> (cgroupfs driver).</summary>
    public CgroupDirs Resolve(string cgroupsPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(cgroupsPath);
        if (cgroupsPath.Split('/').Contains(".."))
            throw new ArgumentException($"\"{cgroupsPath}\" is not a cgroup path", nameof(cgroupsPath));
        if (Mode == CgroupMode.Unified)
            return new CgroupDirs { Mode = Mode, Path = cgroupsPath, Unified = UnifiedDir(cgroupsPath, parentOfOwn: true) };
        return new CgroupDirs
        {
            Mode = Mode,
            Path = cgroupsPath,
            Cpuacct = V1Dir("cpuacct", cgroupsPath),
            Memory = V1Dir("memory", cgroupsPath),
            Pids = V1Dir("pids", cgroupsPath),
            Unified = UnifiedMount is null ? null : UnifiedDir(cgroupsPath, parentOfOwn: false),
        };
    }

    private string? V1Dir(string controller, string path)
    {
        if (!_v1Mounts.TryGetValue(controller, out var mount))
            return null;
        if (path.StartsWith('/'))
            return Join(mount, path);
        return Join(Join(mount, _ownPaths.GetValueOrDefault(controller, "/")), path);
    }

    private string UnifiedDir(string path, bool parentOfOwn)
    {
        if (path.StartsWith('/'))
            return Join(UnifiedMount!, path);
        var own = _ownPaths.GetValueOrDefault("", "/");
        // runc's v2 manager nests a relative path under its own cgroup's parent: the own cgroup has
        // processes, so controllers cannot be enabled for children of it (the no-internal-process rule).
        if (parentOfOwn)
            own = System.IO.Path.GetDirectoryName(own.TrimEnd('/')) ?? "/";
        return Join(Join(UnifiedMount!, own), path);
    }

    private static string Join(string dir, string path)
    {
        var rest = path.Trim('/');
        return rest.Length == 0 ? dir.TrimEnd('/') : dir.TrimEnd('/') + "/" + rest;
    }
}
