namespace Crid.Linux;

/// <summary>One line of a uid_map/gid_map: <c>Length</c> ids from <c>ContainerId</c> map to ids from <c>HostId</c>.</summary>
public sealed record IdMapping(uint ContainerId, uint HostId, uint Length);

/// <summary>A namespace type ("ipc", "uts", "net", "user"); <c>Host</c> means share the host's.</summary>
public sealed record NamespaceRequest(string Type, bool Host);

public sealed record PodNamespacesRequest
{
    /// <summary>Parent of the netns/ipcns/utsns/userns folders, e.g. /var/run.</summary>
    public required string NamespacesDir { get; init; }

    public IReadOnlyList<NamespaceRequest> Namespaces { get; init; } = [];

    /// <summary>Required exactly when a new user namespace is requested.</summary>
    public IReadOnlyList<IdMapping> UidMappings { get; init; } = [];

    public IReadOnlyList<IdMapping> GidMappings { get; init; } = [];

    public IReadOnlyDictionary<string, string> Sysctls { get; init; } = new Dictionary<string, string>();

    /// <summary>Bring "lo" up in a new network namespace.</summary>
    public bool LoopbackUp { get; init; }

    /// <summary>Set in a new uts namespace; refused when uts is the host's.</summary>
    public string? Hostname { get; init; }

    /// <summary>
    /// The pins' file name, a uuid in its "D" form; a new one when null. A caller that must record
    /// which pins are its own before they exist (crid's intent records) chooses it first.
    /// </summary>
    public string? Uuid { get; init; }
}

public sealed record PodNamespacesResult(string Uuid, IReadOnlyList<PinnedNamespace> Pins)
{
    /// <summary>The pin of a type, or null when that type was the host's or not requested.</summary>
    public PinnedNamespace? Get(string type)
    {
        foreach (var pin in Pins)
        {
            if (pin.Type == type)
            {
                return pin;
            }
        }

        return null;
    }
}
