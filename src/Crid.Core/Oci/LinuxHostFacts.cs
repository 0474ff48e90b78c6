using System.Globalization;
using System.Text;
using Crid.Linux;

namespace Crid.Core.Oci;

/// <summary>The host facts as this machine's /proc and /sys tell them. Facts that cannot change while the daemon runs are read once.</summary>
public sealed class LinuxHostFacts : IHostFacts
{
    private const int MaxProfileBytes = 4 << 20;

    // Folders of /dev that hold no device of the host's own, or whose nodes are per-namespace (runc's HostDevices skips the same).
    private static readonly HashSet<string> SkippedDevFolders = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

    private readonly Lazy<string[]> _status = new(() => File.ReadAllLines("/proc/self/status"));
    private readonly Lazy<CgroupFacts> _cgroups;

    public LinuxHostFacts() => _cgroups = new Lazy<CgroupFacts>(ReadCgroups);

    public static LinuxHostFacts Instance { get; } = new();

    public IReadOnlyList<string> BoundingCapabilities => CapabilityNames.FromMask(StatusField("CapBnd"));

    public int MinOomScoreAdj =>
        CapabilityNames.FromMask(StatusField("CapEff")).Contains("CAP_SYS_RESOURCE")
            ? -1000
            : int.Parse(File.ReadAllText("/proc/self/oom_score_adj").Trim(), CultureInfo.InvariantCulture);

    public CgroupFacts Cgroups => _cgroups.Value;

    public bool SeccompEnabled => _status.Value.Any(l => l.StartsWith("Seccomp:", StringComparison.Ordinal));

    public bool AppArmorEnabled =>
        File.Exists("/sys/module/apparmor/parameters/enabled")
        && File.ReadAllText("/sys/module/apparmor/parameters/enabled").Trim() == "Y";

    public HostNode? Stat(string path) => ToHost(DeviceNodes.Stat(path, followLinks: true));

    public IEnumerable<HostDevice> HostDevices() => DevicesUnder("/dev");

    private static IEnumerable<HostDevice> DevicesUnder(string folder)
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries(folder).Order(StringComparer.Ordinal))
        {
            var node = ToHost(DeviceNodes.Stat(entry, followLinks: false));
            switch (node)
            {
                case { Type: 'd' } when !SkippedDevFolders.Contains(Path.GetFileName(entry)):
                    foreach (var d in DevicesUnder(entry))
                        yield return d;
                    break;
                // /dev/console is the runtime's to set up (a container's console is its pty, if any).
                case { Type: 'c' or 'b' } n when entry != "/dev/console":
                    yield return new HostDevice(entry, n);
                    break;
            }
        }
    }

    private static HostNode? ToHost(NodeInfo? n) =>
        n is { } i ? new HostNode(i.Type, i.Major, i.Minor, i.Permissions, i.Uid, i.Gid) : null;

    public string PrepareBindSource(string path)
    {
        if (DeviceNodes.Stat(path, followLinks: true) is null && DeviceNodes.Stat(path, followLinks: false) is null)
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        return RealPath(path);
    }

    /// <summary>realpath(3): every symlink of every component resolved, "." and ".." folded.</summary>
    internal static string RealPath(string path)
    {
        var pending = new Stack<string>(path.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse());
        var resolved = new List<string>();
        for (var links = 0; pending.Count > 0;)
        {
            var part = pending.Pop();
            if (part == ".")
                continue;
            if (part == "..")
            {
                if (resolved.Count > 0)
                    resolved.RemoveAt(resolved.Count - 1);
                continue;
            }
            var current = "/" + string.Join('/', resolved.Append(part));
            var target = new FileInfo(current).LinkTarget;
            if (target is null)
            {
                resolved.Add(part);
                continue;
            }
            // path_resolution(7): at most 40 links in one lookup, then ELOOP.
            if (++links > 40)
                throw new IOException($"{path}: too many levels of symbolic links");
            if (target.StartsWith('/'))
                resolved.Clear();
            foreach (var p in target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse())
                pending.Push(p);
        }
        return "/" + string.Join('/', resolved);
    }

    public Propagation PropagationOf(string realPath) => MountInfo.PropagationOf(File.ReadAllLines("/proc/self/mountinfo"), realPath);

    public byte[]? ReadProfile(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
            return null;
        if (info.Length > MaxProfileBytes)
            throw new IOException($"{path} is {info.Length} bytes, more than a seccomp profile may be ({MaxProfileBytes})");
        return File.ReadAllBytes(path);
    }

    private string StatusField(string name)
    {
        var prefix = name + ":";
        var line = _status.Value.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal))
            ?? throw new IOException($"/proc/self/status has no {name}");
        return line[prefix.Length..].Trim();
    }

    private static CgroupFacts ReadCgroups()
    {
        var mounts = MountTable.OfSelf().ToList();
        // runc (cgroups.IsCgroup2UnifiedMode) uses its v2 manager only when /sys/fs/cgroup itself is cgroup2;
        // a hybrid host (v1 controllers plus a v2 mount at /sys/fs/cgroup/unified) gets the v1 manager.
        var unified = mounts.LastOrDefault(m => m.MountPoint == "/sys/fs/cgroup").FsType == "cgroup2";
        bool hugetlb, swap;
        if (unified)
        {
            var controllers = ReadOr("/sys/fs/cgroup/cgroup.controllers", "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            hugetlb = controllers.Contains("hugetlb");
            var own = File.ReadAllLines("/proc/self/cgroup").FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal))?[3..] ?? "/";
            swap = File.Exists($"/sys/fs/cgroup{own.TrimEnd('/')}/memory.swap.max")
                || Directory.EnumerateDirectories("/sys/fs/cgroup").Any(d => File.Exists(Path.Combine(d, "memory.swap.max")));
        }
        else
        {
            var v1 = mounts.Where(m => m.FsType == "cgroup").ToList();
            hugetlb = v1.Any(m => m.SuperOptions.Split(',').Contains("hugetlb"));
            var memory = v1.FirstOrDefault(m => m.SuperOptions.Split(',').Contains("memory")).MountPoint;
            swap = memory is not null && File.Exists(Path.Combine(memory, "memory.memsw.limit_in_bytes"));
        }
        return new CgroupFacts
        {
            Unified = unified,
            Hugetlb = hugetlb,
            Swap = swap,
            HugePageSizes = HugePageSizes(),
            OnlineCpus = ReadOr("/sys/devices/system/cpu/online", "0").Trim(),
            OnlineMems = ReadOr("/sys/devices/system/node/online", "0").Trim(),
        };
    }

    /// <summary>/sys/kernel/mm/hugepages/hugepages-2048kB is "2MB", as hugetlb cgroup files name the size.</summary>
    private static HashSet<string> HugePageSizes()
    {
        var sizes = new HashSet<string>(StringComparer.Ordinal);
        if (!Directory.Exists("/sys/kernel/mm/hugepages"))
            return sizes;
        foreach (var dir in Directory.EnumerateDirectories("/sys/kernel/mm/hugepages", "hugepages-*kB"))
        {
            var name = Path.GetFileName(dir);
            if (long.TryParse(name["hugepages-".Length..^2], NumberStyles.None, CultureInfo.InvariantCulture, out var kb))
                sizes.Add(kb >= 1 << 20 && kb % (1 << 20) == 0 ? $"{kb >> 20}GB" : kb >= 1024 && kb % 1024 == 0 ? $"{kb >> 10}MB" : $"{kb}KB");
        }
        return sizes;
    }

    private static string ReadOr(string path, string fallback) => File.Exists(path) ? File.ReadAllText(path) : fallback;
}

/// <summary>/proc/self/mountinfo (proc(5)): the propagation the spec needs.</summary>
internal static class MountInfo
{
    /// <summary>The propagation of the mount holding a path: the last (top-most) mount whose mount point contains it.</summary>
    public static Propagation PropagationOf(IEnumerable<string> lines, string path)
    {
        MountTable.Entry? best = null;
        foreach (var m in MountTable.Parse(lines))
        {
            if (Contains(m.MountPoint, path) && (best is null || m.MountPoint.Length >= best.Value.MountPoint.Length))
                best = m;
        }
        var optional = (best?.Optional ?? "").Split(' ');
        if (optional.Any(o => o.StartsWith("shared:", StringComparison.Ordinal)))
            return Propagation.Shared;
        if (optional.Any(o => o.StartsWith("master:", StringComparison.Ordinal)))
            return Propagation.Slave;
        return Propagation.Private;
    }

    private static bool Contains(string mountPoint, string path) =>
        mountPoint == "/" || path == mountPoint || path.StartsWith(mountPoint + "/", StringComparison.Ordinal);
}
