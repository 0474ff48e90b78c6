namespace Crid.Core.Networking;

/// <summary>
/// A sandbox's place on the pod network: the network list its ADD ran with (DEL must run the same
/// plugins, whatever the folder holds by then), the final result (DEL's prevResult, the pod's IPs),
/// and whether DEL is still owed. Immutable: part of the sandbox's status; persisted with it.
/// </summary>
public sealed record NetworkAttachment
{
    public required string NetworkName { get; init; }

    /// <summary>The config file the network came from, for people reading the record.</summary>
    public required string ConfigFile { get; init; }

    /// <summary>The network configuration list, as JSON text.</summary>
    public required string ConfigJson { get; init; }

    /// <summary>The last plugin's ADD result, as JSON text; empty when there was none.</summary>
    public required string ResultJson { get; init; }

    /// <summary>The pod's addresses, the pod interface's first.</summary>
    public required IReadOnlyList<string> Ips { get; init; }

    /// <summary>True until a DEL succeeded: a failed DEL in Stop is retried by Remove and by recovery.</summary>
    public bool Attached { get; init; } = true;
}
