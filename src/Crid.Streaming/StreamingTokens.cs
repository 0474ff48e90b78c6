using System.Security.Cryptography;
using Crid.Core.Errors;

namespace Crid.Streaming;

/// <summary>
/// The requests behind streaming URLs, each under a random single-use token that expires (kubelet's
/// request cache): a URL is a capability, so it must not be guessable, reusable or eternal. The
/// number waiting is bounded; a full cache refuses new ones rather than dropping live ones.
/// </summary>
public sealed class StreamingTokens
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;

    public StreamingTokens(TimeSpan lifetime, int capacity, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lifetime, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Lifetime = lifetime;
        Capacity = capacity;
        _time = time ?? TimeProvider.System;
    }

    public TimeSpan Lifetime { get; }

    public int Capacity { get; }

    public int Count { get { lock (_lock) return _entries.Count; } }

    /// <summary>A new token for <paramref name="request"/>; <see cref="ResourceExhaustedException"/> when the cache is full.</summary>
    public string Add(StreamingRequest request)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (_entries.Count >= Capacity)
            {
                foreach (var (token, entry) in _entries.Where(e => e.Value.Expires <= now).ToList())
                    _entries.Remove(token);
                if (_entries.Count >= Capacity)
                    throw new ResourceExhaustedException($"{Capacity} streaming requests are already waiting for their clients; try again later");
            }
            string fresh;
            do
            {
                // 128 bits: unguessable, and URL-safe without escaping.
                fresh = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
            }
            while (_entries.ContainsKey(fresh));
            _entries[fresh] = new Entry(request, now + Lifetime);
            return fresh;
        }
    }

    /// <summary>The request behind <paramref name="token"/>, removing it; null when unknown, used or expired.</summary>
    public StreamingRequest? Take(string token)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (!_entries.Remove(token, out var entry))
                return null;
            return entry.Expires > now ? entry.Request : null;
        }
    }

    private sealed record Entry(StreamingRequest Request, DateTimeOffset Expires);
}
