using Crid.Core.Errors;

namespace Crid.Core.Stores;

/// <summary>
/// Names held by live objects of one kind (sandboxes, containers), modelled on containerd's
/// internal/registrar: a name is reserved for an id before anything of the object is created, and
/// released on every failure path and when the object is removed, so two objects never share one.
/// Reserving a name again for the id that already holds it succeeds (a retried step is harmless).
/// </summary>
/// <remarks>
/// Intended use, for every kind: <c>Reserve(name, id)</c> first thing in Create/Run, push
/// <c>Release(name, id)</c> on the undo stack, and call it again from Remove. A restarted daemon
/// reserves the names of every record it reloads before it answers.
/// </remarks>
public sealed class NameRegistrar(string kind)
{
    private readonly Dictionary<string, string> _names = new(StringComparer.Ordinal);

    /// <exception cref="AlreadyExistsException">another id holds the name; the message names it.</exception>
    public void Reserve(string name, string id)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(id);
        lock (_names)
        {
            if (_names.TryGetValue(name, out var holder) && holder != id)
                throw new AlreadyExistsException($"the {kind} name \"{name}\" is reserved for {kind} {holder}");
            _names[name] = id;
        }
    }

    /// <summary>Frees the name if <paramref name="id"/> holds it; a name another id holds stays.</summary>
    public void Release(string name, string id)
    {
        lock (_names)
        {
            if (_names.TryGetValue(name, out var holder) && holder == id)
                _names.Remove(name);
        }
    }

    /// <summary>The id holding <paramref name="name"/>, or null.</summary>
    public string? Holder(string name)
    {
        lock (_names)
            return _names.GetValueOrDefault(name);
    }

    /// <summary>A copy of every reservation, name to id.</summary>
    public IReadOnlyDictionary<string, string> Snapshot()
    {
        lock (_names)
            return new Dictionary<string, string>(_names, StringComparer.Ordinal);
    }
}
