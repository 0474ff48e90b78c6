using System.Collections.Concurrent;
using Crid.Core.Errors;

namespace Crid.Core.Sandboxes;

/// <summary>
/// Live sandboxes by id, and the names they hold. A name is reserved before anything of a sandbox
/// is created and released on every failure path, so two sandboxes never share one.
/// </summary>
internal sealed class SandboxStore
{
    private readonly ConcurrentDictionary<string, Sandbox> _byId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _names = new(StringComparer.Ordinal);

    public int Count => _byId.Count;

    public IEnumerable<Sandbox> All => _byId.Values;

    public void ReserveName(string name, string id)
    {
        lock (_names)
        {
            if (_names.TryGetValue(name, out var holder))
                throw new AlreadyExistsException($"the sandbox name \"{name}\" is reserved for sandbox {holder}");
            _names[name] = id;
        }
    }

    public void ReleaseName(string name, string id)
    {
        lock (_names)
        {
            if (_names.TryGetValue(name, out var holder) && holder == id)
                _names.Remove(name);
        }
    }

    public IReadOnlyDictionary<string, string> ReservedNames()
    {
        lock (_names)
            return new Dictionary<string, string>(_names);
    }

    public void Add(Sandbox sandbox)
    {
        if (!_byId.TryAdd(sandbox.Id, sandbox))
            throw new AlreadyExistsException($"sandbox {sandbox.Id} already exists");
    }

    public void Remove(Sandbox sandbox) => _byId.TryRemove(new KeyValuePair<string, Sandbox>(sandbox.Id, sandbox));

    /// <summary>
    /// The sandbox whose id is <paramref name="idOrPrefix"/> or starts with it, as cri-o and containerd
    /// accept; null when none does. An empty or ambiguous prefix is an error.
    /// </summary>
    public Sandbox? Find(string idOrPrefix, string field = "pod_sandbox_id")
    {
        if (string.IsNullOrEmpty(idOrPrefix))
            throw new InvalidArgumentException(field, "a sandbox id is required");
        if (_byId.TryGetValue(idOrPrefix, out var exact))
            return exact;
        Sandbox? found = null;
        foreach (var sandbox in _byId.Values)
        {
            if (!sandbox.Id.StartsWith(idOrPrefix, StringComparison.Ordinal))
                continue;
            if (found is not null)
                throw new InvalidArgumentException(field, $"\"{idOrPrefix}\" matches more than one sandbox; give more of the id");
            found = sandbox;
        }
        return found;
    }
}
