using System.Collections.Concurrent;
using Crid.Core.Errors;

namespace Crid.Core.Stores;

/// <summary>What an <see cref="ObjectStore{T}"/> needs of the objects it holds.</summary>
public interface IStoredObject
{
    /// <summary>The object's full id: 64 lowercase hex characters for sandboxes and containers.</summary>
    string Id { get; }
}

/// <summary>
/// Live objects of one kind by id, with unique-prefix lookup: the store half of containerd's CRI
/// store (internal/cri/store/sandbox, .../container). <c>Add</c> fails with AlreadyExists,
/// <c>Get</c> with NotFound, an ambiguous prefix with InvalidArgument naming the request field.
/// </summary>
/// <remarks>
/// The pieces, and how a kind is built on them (sandboxes do so; containers are meant to):
/// <list type="bullet">
/// <item><see cref="NameRegistrar"/>: the kind's names, reserved before anything is created.</item>
/// <item><see cref="ObjectStore{T}"/> (with its <see cref="IdIndex"/>): the objects that exist,
/// added only once everything of them is created and persisted, so a reader never finds one
/// half-made; removed when its files are gone.</item>
/// <item>The object: immutable metadata, a <see cref="StatusStorage{TStatus}"/> for what changes,
/// and an operation lock (a SemaphoreSlim awaited with the call's cancellation token) that
/// serialises the lifecycle calls on that one object.</item>
/// <item><see cref="PendingCreations{T}"/>: a creation a client gave up waiting for is finished and
/// kept, and the client's retry (same name, same request) gets it instead of AlreadyExists.</item>
/// </list>
/// </remarks>
public sealed class ObjectStore<T>(string kind) where T : class, IStoredObject
{
    private readonly ConcurrentDictionary<string, T> _byId = new(StringComparer.Ordinal);
    private readonly IdIndex _ids = new(kind);

    public int Count => _byId.Count;

    /// <summary>A snapshot of the objects; ones added or removed meanwhile may or may not be in it.</summary>
    public IReadOnlyCollection<T> List() => _byId.Values.ToArray();

    /// <exception cref="AlreadyExistsException">an object with that id exists.</exception>
    public void Add(T item)
    {
        _ids.Add(item.Id);
        if (!_byId.TryAdd(item.Id, item))
        {
            _ids.Remove(item.Id);
            throw new AlreadyExistsException($"{kind} {item.Id} already exists");
        }
    }

    /// <summary>Removes the object if it is the one stored under its id.</summary>
    public void Remove(T item)
    {
        if (_byId.TryRemove(new KeyValuePair<string, T>(item.Id, item)))
            _ids.Remove(item.Id);
    }

    /// <summary>The object whose id is <paramref name="idOrPrefix"/> or uniquely starts with it; null when none.</summary>
    /// <exception cref="InvalidArgumentException">an empty or ambiguous prefix.</exception>
    public T? Find(string idOrPrefix, string field) =>
        _ids.Find(idOrPrefix, field) is { } id && _byId.TryGetValue(id, out var item) ? item : null;

    /// <exception cref="NotFoundException">no object matches.</exception>
    /// <exception cref="InvalidArgumentException">an empty or ambiguous prefix.</exception>
    public T Get(string idOrPrefix, string field) =>
        Find(idOrPrefix, field) ?? throw new NotFoundException($"{kind} \"{IdIndex.Printable(idOrPrefix)}\" not found");
}
