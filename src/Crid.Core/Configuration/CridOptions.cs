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

    /// <summary>The config file that was read, if any.</summary>
    public string? ConfigFile { get; init; }
}
