using Crid.Core.Errors;

namespace Crid.Core.Stores;

/// <summary>
/// The full ids of one kind of object, for lookups by a unique prefix as cri-o and containerd accept
/// them (containerd's truncindex): `crictl stopp 3f2a` finds the one sandbox whose id starts so. Ids
/// are kept sorted, so a lookup is a range query, not a scan of every object.
/// </summary>
public sealed class IdIndex(string kind)
{
    private readonly SortedSet<string> _ids = new(StringComparer.Ordinal);

    public void Add(string id)
    {
        lock (_ids)
        {
            if (!_ids.Add(id))
                throw new AlreadyExistsException($"{kind} {id} already exists");
        }
    }

    public void Remove(string id)
    {
        lock (_ids)
            _ids.Remove(id);
    }

    /// <summary>
    /// The id that is <paramref name="idOrPrefix"/> or the only one starting with it; null when none does.
    /// </summary>
    /// <param name="field">the request field the prefix came from, named by the errors.</param>
    /// <exception cref="InvalidArgumentException">the prefix is empty, or more than one id starts with it.</exception>
    public string? Find(string idOrPrefix, string field)
    {
        if (string.IsNullOrEmpty(idOrPrefix))
            throw new InvalidArgumentException(field, $"a {kind} id is required");
        lock (_ids)
        {
            if (_ids.Contains(idOrPrefix))
                return idOrPrefix;
            // Every id starting with the prefix sorts between the prefix itself and the prefix followed
            // by the greatest char; ids are lowercase hex, far below it.
            string? found = null;
            foreach (var id in _ids.GetViewBetween(idOrPrefix, idOrPrefix + char.MaxValue))
            {
                if (!id.StartsWith(idOrPrefix, StringComparison.Ordinal))
                    continue;
                if (found is not null)
                    throw new InvalidArgumentException(field, $"\"{Printable(idOrPrefix)}\" matches more than one {kind}; give more of the id");
                found = id;
            }
            return found;
        }
    }

    internal static string Printable(string s) => Sandboxes.SandboxValidator.Printable(s);
}
