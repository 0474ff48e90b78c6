using Crid.Core.Errors;
using Crid.Core.Stores;

namespace Crid.Core.Tests;

/// <summary>The state pieces sandboxes (and, next, containers) are built on: pure logic, no root.</summary>
public sealed class StoresTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-stores-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private sealed record Item(string Id) : IStoredObject;

    private sealed record Status(int Value, string Text);

    [Fact]
    public void A_name_is_held_by_one_id_until_that_id_releases_it()
    {
        var names = new NameRegistrar("sandbox");
        names.Reserve("web", "a1");
        names.Reserve("web", "a1");
        var e = Assert.Throws<AlreadyExistsException>(() => names.Reserve("web", "b2"));
        Assert.Contains("reserved for sandbox a1", e.Message);
        names.Release("web", "b2");
        Assert.Equal("a1", names.Holder("web"));
        names.Release("web", "a1");
        names.Reserve("web", "b2");
        Assert.Equal(new Dictionary<string, string> { ["web"] = "b2" }, names.Snapshot());
    }

    [Fact]
    public void Ids_are_found_by_a_unique_prefix()
    {
        var store = new ObjectStore<Item>("container");
        store.Add(new Item("abc123"));
        store.Add(new Item("abd456"));
        store.Add(new Item("ff0000"));
        Assert.Equal("abc123", store.Get("abc", "container_id").Id);
        Assert.Equal("abd456", store.Get("abd456", "container_id").Id);
        Assert.Null(store.Find("abe", "container_id"));
        var nf = Assert.Throws<NotFoundException>(() => store.Get("0", "container_id"));
        Assert.Contains("container \"0\" not found", nf.Message);
        var ambiguous = Assert.Throws<InvalidArgumentException>(() => store.Get("ab", "container_id"));
        Assert.Equal("container_id", ambiguous.Field);
        Assert.Equal("container_id", Assert.Throws<InvalidArgumentException>(() => store.Get("", "container_id")).Field);
        Assert.Throws<AlreadyExistsException>(() => store.Add(new Item("abc123")));
        store.Remove(store.Get("abd", "container_id"));
        Assert.Equal("abc123", store.Get("ab", "container_id").Id);
        Assert.Equal(2, store.Count);
        Assert.Equal(["abc123", "ff0000"], store.List().Select(i => i.Id).Order());
    }

    [Fact]
    public void A_status_change_is_persisted_before_readers_see_it_and_a_failed_one_changes_nothing()
    {
        var path = Path.Combine(_dir, "status");
        var storage = new StatusStorage<Status>(new Status(1, "one"), path, s => System.Text.Encoding.UTF8.GetBytes($"{s.Value} {s.Text}"), durable: false);
        var before = storage.Get();
        storage.Update(s => s with { Value = 2 });
        Assert.Equal("2 one", File.ReadAllText(path));
        Assert.Equal(new Status(2, "one"), storage.Get());
        // What a reader got earlier is a snapshot: it did not change under it.
        Assert.Equal(new Status(1, "one"), before);

        Assert.Throws<InvalidOperationException>(() => storage.Update(_ => throw new InvalidOperationException("no")));
        Assert.Equal(new Status(2, "one"), storage.Get());
        Assert.Equal("2 one", File.ReadAllText(path));

        // A write that fails (its folder is gone) leaves the status as it was.
        var gone = new StatusStorage<Status>(new Status(1, "x"), Path.Combine(_dir, "missing", "status"), _ => [1], durable: false);
        Assert.ThrowsAny<IOException>(() => gone.Update(s => s with { Value = 9 }));
        Assert.Equal(1, gone.Get().Value);

        // The same instance back is no change: nothing is written.
        File.Delete(path);
        storage.Update(s => s);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task Concurrent_updates_are_serialised()
    {
        var storage = StatusStorage<Status>.InMemory(new Status(0, ""));
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 1000; i++)
                storage.Update(s => s with { Value = s.Value + 1 });
        })));
        Assert.Equal(8000, storage.Get().Value);
    }

    [Fact]
    public async Task A_creation_the_caller_gave_up_on_is_finished_and_handed_to_the_retry()
    {
        var creations = new PendingCreations<Item>();
        var gate = new TaskCompletionSource();
        var started = 0;
        Task<Item> Create() => Task.Run(async () =>
        {
            Interlocked.Increment(ref started);
            await gate.Task;
            return new Item("made");
        });

        using var impatient = new CancellationTokenSource();
        var first = creations.RunAsync("pod", "config", Create, impatient.Token);
        impatient.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        Assert.Equal(1, creations.Count);

        // The retry joins the creation in flight rather than starting another.
        var retry = creations.RunAsync("pod", "config", Create, CancellationToken.None);
        gate.SetResult();
        Assert.Equal("made", (await retry).Id);
        Assert.Equal(1, started);
        Assert.Equal(0, creations.Count);
    }

    [Fact]
    public async Task A_result_nobody_collected_waits_for_the_retry_until_forgotten()
    {
        var creations = new PendingCreations<Item>();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        // The work is held until the caller has given up: a result ready before the wait is simply returned.
        var gate = new TaskCompletionSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => creations.RunAsync("pod", "config", async () => { await gate.Task; return new Item("x"); }, cancelled.Token));
        gate.SetResult();
        await Task.Delay(50);
        Assert.Equal(1, creations.Count);
        Assert.Equal("x", (await creations.RunAsync("pod", "config", () => Task.FromResult(new Item("other")), CancellationToken.None)).Id);

        var gate2 = new TaskCompletionSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => creations.RunAsync("pod2", "config", async () => { await gate2.Task; return new Item("y"); }, cancelled.Token));
        gate2.SetResult();
        // Forgotten once its result is in (a loaded machine may take longer than any fixed delay to finish the work).
        var watch = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            await Task.Delay(10);
            creations.Forget("pod2");
        }
        while (creations.Count != 0 && watch.Elapsed < TimeSpan.FromSeconds(10));
        Assert.Equal(0, creations.Count);
    }

    [Fact]
    public async Task A_failure_is_forgotten_and_a_different_request_does_not_join()
    {
        var creations = new PendingCreations<Item>();
        await Assert.ThrowsAsync<AlreadyExistsException>(() => creations.RunAsync("pod", "a", () => throw new AlreadyExistsException("taken"), CancellationToken.None));
        Assert.Equal(0, creations.Count);

        var gate = new TaskCompletionSource<Item>();
        using var gaveUp = new CancellationTokenSource();
        var first = creations.RunAsync("pod", "a", () => gate.Task, gaveUp.Token);
        gaveUp.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        // Another config under the same name is a new creation (which the name registrar refuses in real use).
        Assert.Equal("b", (await creations.RunAsync("pod", "b", () => Task.FromResult(new Item("b")), CancellationToken.None)).Id);
        gate.SetResult(new Item("a"));
        Assert.Equal("a", (await creations.RunAsync("pod", "a", () => Task.FromResult(new Item("again")), CancellationToken.None)).Id);
    }
}
