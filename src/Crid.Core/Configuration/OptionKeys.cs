namespace Crid.Core.Configuration;

/// <summary>
/// Every configuration key, shared by the command line (<c>--key</c>) and the YAML file (<c>key:</c>),
/// so the two can never drift apart and <c>--help</c> lists exactly what is accepted.
/// </summary>
internal enum OptionKind { Path, String, LogLevel, StringList }

internal sealed record OptionKey(string Name, OptionKind Kind, string Help, Func<CridOptions, string> Show, Func<CridOptions, object, CridOptions> Apply);

internal static class OptionKeys
{
    public static readonly string[] LogLevels = ["trace", "debug", "info", "warning", "error", "critical", "none"];

    public static readonly OptionKey[] All =
    [
        new("listen", OptionKind.Path, "Unix socket the CRI gRPC server listens on",
            o => o.Listen, (o, v) => o with { Listen = (string)v }),
        new("state-dir", OptionKind.Path, "folder holding sandbox records and specs",
            o => o.StateDir, (o, v) => o with { StateDir = (string)v }),
        new("namespaces-dir", OptionKind.Path, "folder under which pod namespaces are pinned (<dir>/<type>ns/<uuid>)",
            o => o.NamespacesDir, (o, v) => o with { NamespacesDir = (string)v }),
        new("log-level", OptionKind.LogLevel, "one of " + string.Join(", ", LogLevels),
            o => o.LogLevel, (o, v) => o with { LogLevel = (string)v }),
        new("socket-group", OptionKind.String, "group (name or gid) that owns the socket; empty: root's",
            o => o.SocketGroup, (o, v) => o with { SocketGroup = (string)v }),
        new("runtime-handlers", OptionKind.StringList, "runtime handlers accepted besides the default; comma-separated on the command line",
            o => string.Join(",", o.RuntimeHandlers), (o, v) => o with { RuntimeHandlers = (IReadOnlyList<string>)v }),
    ];

    public static OptionKey? Find(string name) => Array.Find(All, k => k.Name == name);
}
