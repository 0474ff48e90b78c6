namespace Crid.Core.Oci;

/// <summary>
/// One concern applied to a spec: containerd's oci.SpecOpts. A spec is built by applying a list
/// of these in order to an empty <see cref="Spec"/>, so a later option sees (and may override)
/// what an earlier one did: privileged after the masked paths clears them, a CRI mount after the
/// defaults replaces the default at the same destination.
/// </summary>
public delegate void SpecOpt(Spec spec);

/// <summary>The small, general options; the CRI-specific decisions live in <see cref="ContainerSpecs"/>.</summary>
public static partial class SpecOpts
{
    public static Spec Build(IEnumerable<SpecOpt> opts) => Apply(new Spec(), opts);

    public static Spec Apply(Spec spec, IEnumerable<SpecOpt> opts)
    {
        foreach (var opt in opts)
            opt(spec);
        return spec;
    }

    public static SpecOpt Compose(params SpecOpt[] opts) => spec =>
    {
        foreach (var opt in opts)
            opt(spec);
    };

    internal static SpecProcess EnsureProcess(this Spec s) => s.Process ??= new SpecProcess();

    internal static SpecLinux EnsureLinux(this Spec s) => s.Linux ??= new SpecLinux();

    internal static LinuxResources EnsureResources(this Spec s) => s.EnsureLinux().Resources ??= new LinuxResources();

    internal static LinuxCapabilities EnsureCapabilities(this Spec s) => s.EnsureProcess().Capabilities ??= new LinuxCapabilities();

    // ---- process (config.md "Process") ----

    public static SpecOpt WithProcessArgs(IEnumerable<string> args) => s => s.EnsureProcess().Args = [.. args];

    public static SpecOpt WithCwd(string cwd) => s => s.EnsureProcess().Cwd = cwd;

    public static SpecOpt WithTerminal(bool terminal) => s => s.EnsureProcess().Terminal = terminal;

    /// <summary>
    /// KEY=value entries: one whose key is already set replaces it in place, a new key is appended
    /// (the image's PATH is overridden by the config's, as docker and containerd do).
    /// </summary>
    public static SpecOpt WithEnv(IEnumerable<string> entries) => s =>
    {
        var env = s.EnsureProcess().Env ??= [];
        foreach (var entry in entries)
        {
            var key = EnvKey(entry);
            var at = env.FindIndex(e => EnvKey(e) == key);
            if (at >= 0)
                env[at] = entry;
            else
                env.Add(entry);
        }
    };

    /// <summary>Sets KEY=value only when the key is not there yet.</summary>
    public static SpecOpt WithDefaultEnv(string key, string value) => s =>
    {
        var env = s.EnsureProcess().Env ??= [];
        if (!env.Any(e => EnvKey(e) == key))
            env.Add($"{key}={value}");
    };

    internal static string EnvKey(string entry)
    {
        var eq = entry.IndexOf('=');
        return eq < 0 ? entry : entry[..eq];
    }

    public static SpecOpt WithUser(uint uid, uint gid) => s =>
    {
        var user = s.EnsureProcess().User;
        user.Uid = uid;
        user.Gid = gid;
    };

    /// <summary>Supplementary groups, merged with those already set, sorted and without duplicates.</summary>
    public static SpecOpt WithAdditionalGids(IEnumerable<uint> gids) => s =>
    {
        var user = s.EnsureProcess().User;
        user.AdditionalGids = [.. (user.AdditionalGids ?? []).Concat(gids).Distinct().Order()];
    };

    public static SpecOpt WithNoNewPrivileges(bool on) => s => s.EnsureProcess().NoNewPrivileges = on;

    public static SpecOpt WithOomScoreAdj(int adj) => s => s.EnsureProcess().OomScoreAdj = adj;

    public static SpecOpt WithApparmorProfile(string? profile) => s => s.EnsureProcess().ApparmorProfile = profile;

    // ---- capabilities (config.md "capabilities") ----

    /// <summary>
    /// The container's capabilities: bounding, effective and permitted. Inheritable stays empty
    /// (CVE-2022-24769: an inheritable set lets file capabilities grant more on exec), ambient too
    /// (Kubernetes defines no ambient capabilities for non-root users).
    /// </summary>
    public static SpecOpt WithCapabilities(IEnumerable<string> caps) => s =>
    {
        List<string> set = [.. caps.Distinct()];
        var c = s.EnsureCapabilities();
        c.Bounding = [.. set];
        c.Effective = [.. set];
        c.Permitted = [.. set];
        c.Inheritable = null;
        c.Ambient = null;
    };

    public static SpecOpt WithAddedCapabilities(IEnumerable<string> caps) => s =>
    {
        var c = s.EnsureCapabilities();
        foreach (var cap in caps)
        {
            foreach (var set in new[] { c.Bounding ??= [], c.Effective ??= [], c.Permitted ??= [] })
            {
                if (!set.Contains(cap))
                    set.Add(cap);
            }
        }
    };

    public static SpecOpt WithDroppedCapabilities(IEnumerable<string> caps) => s =>
    {
        var drop = caps.ToHashSet(StringComparer.Ordinal);
        var c = s.EnsureCapabilities();
        foreach (var set in new[] { c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient })
            set?.RemoveAll(drop.Contains);
    };

    // ---- root, hostname, annotations ----

    public static SpecOpt WithRoot(string path, bool readOnly) => s => s.Root = new SpecRoot { Path = path, Readonly = readOnly };

    public static SpecOpt WithHostname(string hostname) => s => s.Hostname = hostname;

    public static SpecOpt WithAnnotations(IEnumerable<KeyValuePair<string, string>> annotations) => s =>
    {
        var a = s.Annotations ??= [];
        foreach (var (key, value) in annotations)
            a[key] = value;
    };

    public static SpecOpt WithAnnotation(string key, string value) => WithAnnotations([new(key, value)]);
}
