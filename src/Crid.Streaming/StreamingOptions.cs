using System.Net;

namespace Crid.Streaming;

/// <summary>How the streaming server listens and how long it waits.</summary>
public sealed record StreamingOptions
{
    public IPAddress Address { get; init; } = IPAddress.Loopback;

    /// <summary>0: a free port, chosen when the server starts (as cri-o and containerd do by default).</summary>
    public int Port { get; init; }

    /// <summary>A connection with no frame either way for this long is closed (kubelet's default: 4 h).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromHours(4);

    /// <summary>How long a client has to open its streams after the upgrade (kubelet's 30 s).</summary>
    public TimeSpan CreationTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>After the last word, how long we read on while waiting for the client to close.</summary>
    public TimeSpan Linger { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a URL stays usable (kubelet: 1 minute).</summary>
    public TimeSpan TokenLifetime { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>URLs handed out and not yet used, at most (kubelet: 1000).</summary>
    public int MaxTokens { get; init; } = 1000;

    /// <summary>Streaming connections at once, at most; Kestrel closes any beyond it at once.</summary>
    public int MaxConnections { get; init; } = 1000;
}
