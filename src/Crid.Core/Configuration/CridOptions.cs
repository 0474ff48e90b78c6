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

    /// <summary>Runtime handlers a RunPodSandbox may name besides the default (empty) one.</summary>
    public IReadOnlyList<string> RuntimeHandlers { get; init; } = [];

    /// <summary>Where the pod network's CNI config is looked for; re-read whenever the folder changes.</summary>
    public string CniConfDir { get; init; } = "/etc/cni/net.d";

    /// <summary>
    /// CNI_PATH, in search order. /opt/cni/bin is where upstream's release tarballs go, /usr/lib/cni is
    /// where Debian's containernetworking-plugins puts them; both by default so either install just works.
    /// </summary>
    public IReadOnlyList<string> CniBinDirs { get; init; } = ["/opt/cni/bin", "/usr/lib/cni"];

    /// <summary>How long one CNI plugin invocation may take before it is killed.</summary>
    public double CniTimeoutSeconds { get; init; } = 60;

    /// <summary>Registry remaps, mirrors and plain-HTTP registries (YAML only); see <see cref="RegistryEntry"/>.</summary>
    public IReadOnlyList<RegistryEntry> Registries { get; init; } = [];

    /// <summary>
    /// A Docker-style credentials file (<c>{"auths": {"host": {"auth": base64(user:password)}}}</c>) used
    /// when a PullImage brings no AuthConfig; empty: none.
    /// </summary>
    public string RegistryCredentials { get; init; } = "";

    /// <summary>A pull fails when a registry sends no byte for this long (a stalled connection).</summary>
    public double PullIdleTimeoutSeconds { get; init; } = 60;

    /// <summary>The config file that was read, if any.</summary>
    public string? ConfigFile { get; init; }
}
