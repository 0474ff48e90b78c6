namespace Crid.Core.Configuration;

/// <summary>
/// The daemon's effective configuration: built-in defaults, overlaid by the config file, overlaid by flags.
/// Loading it touches no host state, so it can be tested without root (STYLE habit 5).
/// </summary>
public sealed record CridOptions
{
    public const string DefaultConfigFile = "/etc/crid/crid.yaml";

    public string Listen { get; init; } = "/run/crid/crid.sock";
    public string StateDir { get; init; } = "/var/lib/crid";
    public string NamespacesDir { get; init; } = "/var/run";
    public string LogLevel { get; init; } = "info";

    /// <summary>Group owning the socket (name or numeric gid); empty keeps root's group.</summary>
    public string SocketGroup { get; init; } = "";

    /// <summary>
    /// Runtime handlers a RunPodSandbox may name besides the default (empty) one: each "name", run
    /// by <see cref="RuntimePath"/>, or "name=/path/to/binary", a runc-compatible runtime of its own.
    /// </summary>
    public IReadOnlyList<string> RuntimeHandlers { get; init; } = [];

    /// <summary>The OCI runtime of the default handler (and of handlers that name none): runc, as Debian installs it.</summary>
    public string RuntimePath { get; init; } = "/usr/sbin/runc";

    /// <summary>
    /// The runtime's state (runc --root) and the monitors' exit files and attach sockets, one folder
    /// per handler. On a tmpfs (containers do not survive a reboot, nor should their state), and
    /// short: an attach socket's path, &lt;root&gt;/&lt;handler&gt;/attach/&lt;64-hex id&gt;/attach, must fit in 108 bytes.
    /// </summary>
    public string RuntimeRoot { get; init; } = "/run/crid/runtime";

    /// <summary>Each container's monitor: Debian's conmon.</summary>
    public string ConmonPath { get; init; } = "/usr/bin/conmon";

    /// <summary>The cgroup (cgroupfs) containers go under when their pod names no cgroup_parent.</summary>
    public string DefaultCgroupParent { get; init; } = "/crid";

    /// <summary>pids.max of every container's cgroup; 0 leaves it unlimited (kubelet sets pod limits itself).</summary>
    public long PidsLimit { get; init; }

    /// <summary>Where the pod network's CNI config is looked for; re-read whenever the folder changes.</summary>
    public string CniConfDir { get; init; } = "/etc/cni/net.d";

    /// <summary>
    /// CNI_PATH, in search order. /opt/cni/bin is where upstream's release tarballs go, /usr/lib/cni is
    /// where Debian's containernetworking-plugins puts them; both by default so either install just works.
    /// </summary>
    public IReadOnlyList<string> CniBinDirs { get; init; } = ["/opt/cni/bin", "/usr/lib/cni"];

    /// <summary>How long one CNI plugin invocation may take before it is killed.</summary>
    public double CniTimeoutSeconds { get; init; } = 60;

    /// <summary>Every runtime handler with its runtime binary, the default ("") first.</summary>
    public IReadOnlyList<ConfiguredHandler> Handlers() =>
        [new ConfiguredHandler("", RuntimePath), .. RuntimeHandlers.Select(h => ConfiguredHandler.Parse(h, RuntimePath))];

    /// <summary>The handler names besides the default, as RunPodSandbox accepts them.</summary>
    public IReadOnlyList<string> HandlerNames() => [.. RuntimeHandlers.Select(h => ConfiguredHandler.Parse(h, RuntimePath).Name)];

    /// <summary>Registry remaps, mirrors and plain-HTTP registries (YAML only); see <see cref="RegistryEntry"/>.</summary>
    public IReadOnlyList<RegistryEntry> Registries { get; init; } = [];

    /// <summary>
    /// A Docker-style credentials file (<c>{"auths": {"host": {"auth": base64(user:password)}}}</c>) used
    /// when a PullImage brings no AuthConfig; empty: none.
    /// </summary>
    public string RegistryCredentials { get; init; } = "";

    /// <summary>A pull fails when a registry sends no byte for this long (a stalled connection).</summary>
    public double PullIdleTimeoutSeconds { get; init; } = 60;
    /// <summary>Address of the streaming server (exec, attach, port-forward URLs); loopback unless the API server must reach it.</summary>
    public string StreamingAddress { get; init; } = "127.0.0.1";

    /// <summary>Port of the streaming server; 0 picks a free one at start, as cri-o and containerd do.</summary>
    public int StreamingPort { get; init; }

    /// <summary>A streaming connection with no traffic for this long is closed (kubelet's default: 4 hours).</summary>
    public double StreamingIdleTimeoutSeconds { get; init; } = 4 * 3600;

    /// <summary>
    /// Events a GetContainerEvents subscriber may fall behind before it is cut off (RESOURCE_EXHAUSTED;
    /// kubelet relists and subscribes again); 0: <see cref="Events.ContainerEventBus.DefaultQueueCapacity"/>.
    /// </summary>
    public long EventsQueueCapacity { get; init; }

    /// <summary>The config file that was read, if any.</summary>
    public string? ConfigFile { get; init; }

    /// <summary>
    /// TEST ONLY, off (empty) by default and never a config key: the name of a point (see
    /// <see cref="TestCrash"/>) where the daemon SIGKILLs itself, so tests can put a crash exactly
    /// inside a window instead of hoping a random kill lands there. Set from the environment
    /// variable <see cref="TestCrash.EnvironmentVariable"/> by the entry point.
    /// </summary>
    public string TestOnlyCrashAt { get; init; } = "";
}

/// <summary>A runtime handler: its name (empty for the default) and the runc-compatible binary running its containers.</summary>
public sealed record ConfiguredHandler(string Name, string RuntimePath)
{
    /// <summary>"name" (the default runtime) or "name=/absolute/path".</summary>
    /// <exception cref="FormatException">the name is not a DNS label, or the path is not absolute.</exception>
    public static ConfiguredHandler Parse(string entry, string defaultRuntime)
    {
        var eq = entry.IndexOf('=');
        var name = (eq < 0 ? entry : entry[..eq]).Trim();
        var path = eq < 0 ? defaultRuntime : entry[(eq + 1)..].Trim();
        // Kubernetes RuntimeClass: "handler ... must be lowercase, conform to the DNS Label (RFC 1123) requirements".
        if (name.Length is 0 or > 63 || !name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-') || name[0] == '-' || name[^1] == '-')
            throw new FormatException($"\"{name}\" is not a runtime handler name (a DNS label: lowercase letters, digits and '-')");
        if (!Path.IsPathFullyQualified(path) || path.Contains('\0'))
            throw new FormatException($"runtime handler {name}: \"{path}\" is not an absolute path");
        return new ConfiguredHandler(name, path);
    }

    /// <summary>
    /// The handler's folder under the runtime root: its name, or for a name too long to keep attach
    /// socket paths short, a digest of it ("default" for the default handler).
    /// </summary>
    public string StateFolderName => Name.Length == 0 ? "default"
        : Name.Length <= 8 ? Name
        : "h" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Name)))[..7];
}
