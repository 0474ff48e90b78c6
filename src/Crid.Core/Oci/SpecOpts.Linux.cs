namespace Crid.Core.Oci;

public static partial class SpecOpts
{
    // ---- mounts (config.md "Mounts") ----

    /// <summary>Adds a mount, replacing one already at the same destination (in its place, so order is kept).</summary>
    public static SpecOpt WithMount(SpecMount mount) => s =>
    {
        var mounts = s.Mounts ??= [];
        var at = mounts.FindIndex(m => SameDestination(m.Destination, mount.Destination));
        if (at >= 0)
            mounts[at] = mount;
        else
            mounts.Add(mount);
    };

    public static SpecOpt WithMounts(IEnumerable<SpecMount> mounts) => s =>
    {
        foreach (var m in mounts)
            WithMount(m)(s);
    };

    /// <summary>Removes the mounts at a destination, and with <paramref name="below"/> everything under it too.</summary>
    public static SpecOpt WithoutMount(string destination, bool below = false) => s =>
        s.Mounts?.RemoveAll(m => SameDestination(m.Destination, destination)
            || (below && m.Destination.StartsWith(destination.TrimEnd('/') + "/", StringComparison.Ordinal)));

    internal static bool SameDestination(string a, string b) =>
        string.Equals(a.TrimEnd('/'), b.TrimEnd('/'), StringComparison.Ordinal) || (a == "/" && b == "/");

    internal static SpecMount NewMount(string destination, string type, string source, params string[] options) =>
        new() { Destination = destination, Type = type, Source = source, Options = [.. options] };

    /// <summary>config-linux.md "rootfs mount propagation": the runtime's own mount of the root.</summary>
    public static SpecOpt WithRootfsPropagation(string propagation) => s => s.EnsureLinux().RootfsPropagation = propagation;

    /// <summary>Takes "ro" off the mounts of a type (privileged containers get a writable /sys and cgroupfs, as docker's).</summary>
    public static SpecOpt WithWritableMounts(string type) => s =>
    {
        foreach (var m in s.Mounts ?? [])
        {
            if (m.Type == type)
                m.Options?.RemoveAll(o => o == "ro");
        }
    };

    public static SpecOpt WithMaskedPaths(IEnumerable<string>? paths) => s => s.EnsureLinux().MaskedPaths = paths is null ? null : [.. paths];

    public static SpecOpt WithReadonlyPaths(IEnumerable<string>? paths) => s => s.EnsureLinux().ReadonlyPaths = paths is null ? null : [.. paths];

    // ---- namespaces (config-linux.md "Namespaces") ----

    /// <summary>Sets the namespace of a type: joined when a path is given, new otherwise; replaces an earlier entry of the type.</summary>
    public static SpecOpt WithNamespace(string type, string? path = null) => s =>
    {
        var namespaces = s.EnsureLinux().Namespaces ??= [];
        var entry = new LinuxNamespace { Type = type, Path = path };
        var at = namespaces.FindIndex(n => n.Type == type);
        if (at >= 0)
            namespaces[at] = entry;
        else
            namespaces.Add(entry);
    };

    /// <summary>Leaves a type out, so the runtime shares its own (the host's) namespace of that type.</summary>
    public static SpecOpt WithoutNamespace(string type) => s => s.Linux?.Namespaces?.RemoveAll(n => n.Type == type);

    public static SpecOpt WithIdMappings(IReadOnlyList<LinuxIdMapping> uids, IReadOnlyList<LinuxIdMapping> gids) => s =>
    {
        var linux = s.EnsureLinux();
        linux.UidMappings = [.. uids];
        linux.GidMappings = [.. gids];
    };

    public static SpecOpt WithSysctls(IEnumerable<KeyValuePair<string, string>> sysctls) => s =>
    {
        foreach (var (key, value) in sysctls)
            (s.EnsureLinux().Sysctl ??= [])[key] = value;
    };

    // ---- cgroups (config-linux.md "Control groups") ----

    public static SpecOpt WithCgroupsPath(string path) => s => s.EnsureLinux().CgroupsPath = path;

    public static SpecOpt WithDeviceRule(LinuxDeviceRule rule) => s => (s.EnsureResources().Devices ??= []).Add(rule);

    /// <summary>Every device allowed (privileged): the rules so far are replaced by one that allows all.</summary>
    public static SpecOpt WithAllDevicesAllowed() => s =>
        s.EnsureResources().Devices = [new LinuxDeviceRule { Allow = true, Access = "rwm" }];

    /// <summary>A device node to create in the container, replacing one at the same path.</summary>
    public static SpecOpt WithDevice(LinuxDevice device) => s =>
    {
        var devices = s.EnsureLinux().Devices ??= [];
        devices.RemoveAll(d => d.Path == device.Path);
        devices.Add(device);
    };

    public static SpecOpt WithCpu(Action<LinuxCpu> edit) => s => edit(s.EnsureResources().Cpu ??= new LinuxCpu());

    public static SpecOpt WithMemory(Action<LinuxMemory> edit) => s => edit(s.EnsureResources().Memory ??= new LinuxMemory());

    public static SpecOpt WithPidsLimit(long limit) => s => s.EnsureResources().Pids = new LinuxPids { Limit = limit };

    public static SpecOpt WithHugepageLimits(IEnumerable<LinuxHugepageLimit> limits) => s =>
    {
        List<LinuxHugepageLimit> list = [.. limits];
        s.EnsureResources().HugepageLimits = list.Count > 0 ? list : null;
    };

    public static SpecOpt WithUnifiedResources(IEnumerable<KeyValuePair<string, string>> values) => s =>
    {
        foreach (var (key, value) in values)
            (s.EnsureResources().Unified ??= [])[key] = value;
    };

    // ---- security ----

    public static SpecOpt WithSeccomp(LinuxSeccomp? profile) => s => s.EnsureLinux().Seccomp = profile;
}
