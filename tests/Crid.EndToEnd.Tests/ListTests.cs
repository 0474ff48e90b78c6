using Google.Protobuf;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// ListPodSandbox as kubelet relies on it every second: its answer is written from bytes kept per
/// sandbox and state (Crid.Server's ListAnswers), so every change must show in the very next list,
/// filters must still pick from it, and a list taken while pods come and go must stay whole.
/// </summary>
public sealed class ListTests
{
    [Fact]
    public async Task A_change_after_a_list_shows_in_the_next_list()
    {
        await using var d = await DaemonProcess.StartAsync();
        var configs = Enumerable.Range(0, 3).Select(i => Config($"list-{i}", attempt: (uint)i)).ToList();
        var ids = new List<string>();
        foreach (var c in configs)
            ids.Add((await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = c })).PodSandboxId);

        // Every listed field as PodSandboxStatus gives it, twice (the second answer comes from the kept bytes).
        for (var round = 0; round < 2; round++)
        {
            var listed = await ListAsync(d);
            Assert.Equal(ids.Order(), listed.Keys.Order());
            for (var i = 0; i < ids.Count; i++)
                await AssertAsStatus(d, listed[ids[i]], configs[i], PodSandboxState.SandboxReady);
        }

        // Stopped: NOTREADY in the next list, and the state filter follows.
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = ids[1] });
        var afterStop = await ListAsync(d);
        Assert.Equal(PodSandboxState.SandboxNotready, afterStop[ids[1]].State);
        await AssertAsStatus(d, afterStop[ids[1]], configs[1], PodSandboxState.SandboxNotready);
        Assert.Equal(PodSandboxState.SandboxReady, afterStop[ids[0]].State);
        Assert.Equal([ids[1]], await IdsAsync(d, new PodSandboxFilter { State = new PodSandboxStateValue { State = PodSandboxState.SandboxNotready } }));
        Assert.Equal(new[] { ids[0], ids[2] }.Order(), (await IdsAsync(d, new PodSandboxFilter { State = new PodSandboxStateValue { State = PodSandboxState.SandboxReady } })).Order());

        // Removed: gone from the next list; a new pod (a new attempt of the same name) is in it.
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = ids[1] });
        var again = Config("list-1", attempt: 7);
        var newId = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = again })).PodSandboxId;
        var afterRemove = await ListAsync(d);
        Assert.Equal(new[] { ids[0], ids[2], newId }.Order(), afterRemove.Keys.Order());
        await AssertAsStatus(d, afterRemove[newId], again, PodSandboxState.SandboxReady);
        Assert.Equal(7u, afterRemove[newId].Metadata.Attempt);

        // Filters pick from the same entries: label, id prefix, both.
        Assert.Equal([ids[2]], await IdsAsync(d, new PodSandboxFilter { LabelSelector = { ["pod"] = "list-2" } }));
        Assert.Equal(new[] { ids[0], ids[2], newId }.Order(), (await IdsAsync(d, new PodSandboxFilter { LabelSelector = { ["suite"] = "list" } })).Order());
        Assert.Equal([newId], await IdsAsync(d, new PodSandboxFilter { Id = newId[..13] }));
        Assert.Empty(await IdsAsync(d, new PodSandboxFilter { Id = newId[..13], LabelSelector = { ["pod"] = "list-0" } }));

        foreach (var id in new[] { ids[0], ids[2], newId })
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        Assert.Empty(await ListAsync(d));
    }

    [Fact]
    public async Task Lists_taken_while_pods_come_and_go_are_whole()
    {
        await using var d = await DaemonProcess.StartAsync();
        var steady = new List<string>();
        for (var i = 0; i < 20; i++)
            steady.Add((await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Config($"steady-{i}", 0) })).PodSandboxId);

        using var done = new CancellationTokenSource();
        var churn = Enumerable.Range(0, 3).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 15; i++)
            {
                var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Config($"churn-{w}-{i}", 0) })).PodSandboxId;
                await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
                await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
            }
        })).ToList();
        var lists = 0;
        var churnSeen = 0;
        var all = Task.WhenAll(churn);
        while (!all.IsCompleted)
        {
            var items = (await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items;
            lists++;
            // No entry twice, the steady pods always there and ready, every entry consistent with its own labels.
            Assert.Equal(items.Count, items.Select(p => p.Id).Distinct().Count());
            Assert.All(steady, id => Assert.Equal(PodSandboxState.SandboxReady, Assert.Single(items, p => p.Id == id).State));
            foreach (var p in items)
                Assert.Equal(p.Metadata.Name, p.Labels["pod"]);
            churnSeen += items.Count(p => p.Metadata.Name.StartsWith("churn-", StringComparison.Ordinal));
        }
        await all;
        Assert.True(lists > 1, $"only {lists} lists ran during the churn");
        Assert.Equal(steady.Order(), (await ListAsync(d)).Keys.Order());
        foreach (var id in steady)
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
    }

    private static PodSandboxConfig Config(string name, uint attempt) => new()
    {
        Metadata = new PodSandboxMetadata { Name = name, Namespace = "list-test", Uid = "uid-" + name, Attempt = attempt },
        Labels = { ["pod"] = name, ["suite"] = "list" },
        Annotations = { ["example.com/note"] = "annotated " + name, ["example.com/empty"] = "" },
        Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Pid = NamespaceMode.Container } } },
    };

    private static async Task<Dictionary<string, PodSandbox>> ListAsync(DaemonProcess d) =>
        (await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items.ToDictionary(p => p.Id);

    private static async Task<List<string>> IdsAsync(DaemonProcess d, PodSandboxFilter filter) =>
        [.. (await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest { Filter = filter })).Items.Select(p => p.Id)];

    /// <summary>The listed entry carries what the pod's status and config say, field for field.</summary>
    private static async Task AssertAsStatus(DaemonProcess d, PodSandbox listed, PodSandboxConfig config, PodSandboxState state)
    {
        var status = (await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = listed.Id })).Status;
        var expected = new PodSandbox
        {
            Id = status.Id,
            Metadata = config.Metadata,
            State = state,
            CreatedAt = status.CreatedAt,
            Labels = { config.Labels },
            Annotations = { config.Annotations },
            RuntimeHandler = status.RuntimeHandler,
        };
        Assert.Equal(state, status.State);
        Assert.True(listed.CreatedAt > 0);
        Assert.Equal(expected, listed);
    }
}
