using Crid.Core.Sandboxes;
using Crid.Core.Storage;
using Crid.Core.Stores;
using Runtime.V1;

namespace Crid.Core.Tests;

/// <summary>
/// The sandbox's record carries the status it was created with (Run writes one file fewer);
/// status.json appears with the first change and wins from then on. No root needed.
/// </summary>
public sealed class SandboxRecordTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-record-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private Sandbox Created(SandboxStatus status) => new()
    {
        Id = Path.GetFileName(_dir),
        Name = "k8s_web_prod_uid-1_0",
        Config = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "web", Namespace = "prod", Uid = "uid-1" } },
        CreatedAt = 42,
        RuntimeHandler = "",
        Hostname = "web",
        Uuid = "9c1dc503-0000-4000-8000-000000000000",
        Pins = new Dictionary<string, string> { ["net"] = "/run/x/netns/9c1dc503", ["uts"] = "/run/x/utsns/9c1dc503" },
        Dir = _dir,
        Status = SandboxRecord.NewStatus(_dir, status),
    };

    private void WriteRecord(Sandbox sandbox) =>
        AtomicFiles.Write(Path.Combine(_dir, SandboxRecord.FileName), SandboxRecord.Serialize(sandbox), AtomicFiles.PrivateFile, durable: false);

    [Fact]
    public void Until_its_first_change_the_status_is_the_records_own_and_no_status_file_exists()
    {
        var sandbox = Created(new SandboxStatus { State = SandboxState.Ready, InfraPid = 1234 });
        WriteRecord(sandbox);
        Assert.False(File.Exists(Path.Combine(_dir, SandboxRecord.StatusFileName)));

        var loaded = SandboxRecord.Load(_dir);
        Assert.Equal(SandboxState.Ready, loaded.State);
        Assert.Equal(1234, loaded.InfraPid);
        Assert.Equal(sandbox.Pins, loaded.Pins);
        Assert.Equal(sandbox.Config, loaded.Config);
    }

    [Fact]
    public void The_first_change_writes_the_status_file_which_wins_over_the_record()
    {
        var sandbox = Created(new SandboxStatus { State = SandboxState.Ready });
        WriteRecord(sandbox);
        sandbox.Status.Update(s => s with { State = SandboxState.NotReady });
        Assert.True(File.Exists(Path.Combine(_dir, SandboxRecord.StatusFileName)));
        Assert.Equal(SandboxState.NotReady, SandboxRecord.Load(_dir).State);
        // The record itself is never rewritten.
        Assert.Contains("\"READY\"", File.ReadAllText(Path.Combine(_dir, SandboxRecord.FileName)));
    }

    [Fact]
    public void A_status_file_a_host_crash_left_empty_falls_back_to_the_record_and_a_record_without_a_status_is_NOTREADY()
    {
        var sandbox = Created(new SandboxStatus { State = SandboxState.Ready });
        WriteRecord(sandbox);
        File.WriteAllBytes(Path.Combine(_dir, SandboxRecord.StatusFileName), []);
        // Recovery then checks the pins of a READY record; after a reboot they are gone.
        Assert.Equal(SandboxState.Ready, SandboxRecord.Load(_dir).State);

        // A record of the same version written before it carried the status: NOTREADY, as before.
        var record = File.ReadAllText(Path.Combine(_dir, SandboxRecord.FileName));
        var withoutStatus = record[..record.IndexOf(",\n  \"status\"", StringComparison.Ordinal)] + "\n}";
        File.WriteAllText(Path.Combine(_dir, SandboxRecord.FileName), withoutStatus);
        File.Delete(Path.Combine(_dir, SandboxRecord.StatusFileName));
        Assert.Equal(SandboxState.NotReady, SandboxRecord.Load(_dir).State);
    }
}

/// <summary>Blocking host calls run on dedicated threads that live on between calls.</summary>
public sealed class BlockingCallsTests
{
    [Fact]
    public async Task Work_runs_off_the_thread_pool_on_a_thread_that_is_kept_for_the_next_call()
    {
        var first = await BlockingCalls.RunAsync(() => (Thread.CurrentThread.IsThreadPoolThread, Thread.CurrentThread.ManagedThreadId, Thread.CurrentThread.Name));
        Assert.False(first.IsThreadPoolThread);
        Assert.Equal("crid-blocking", first.Name);
        // The next call, once the first thread is idle again, reuses a kept thread rather than making one.
        await Task.Delay(50);
        var threads = BlockingCalls.Threads;
        var second = await BlockingCalls.RunAsync(() => Thread.CurrentThread.Name);
        Assert.Equal("crid-blocking", second);
        Assert.True(BlockingCalls.Threads <= threads, $"{BlockingCalls.Threads} threads after one more call, {threads} before");
    }

    [Fact]
    public async Task A_call_never_waits_behind_another_and_failures_reach_the_caller()
    {
        // Four calls that can only finish together: each must have a thread of its own.
        using var all = new Barrier(4);
        var calls = Enumerable.Range(0, 4).Select(_ => BlockingCalls.RunAsync(() => all.SignalAndWait(TimeSpan.FromSeconds(10)))).ToList();
        Assert.All(await Task.WhenAll(calls), Assert.True);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => BlockingCalls.RunAsync<int>(() => throw new InvalidOperationException("refused")));
        Assert.Equal("refused", e.Message);
    }
}

/// <summary>A creation starts on its caller's thread: no hop to the pool before its first wait.</summary>
public sealed class PendingCreationsStartTests
{
    [Fact]
    public async Task The_first_part_of_a_creation_runs_on_the_callers_thread()
    {
        var creations = new PendingCreations<string>();
        var caller = Environment.CurrentManagedThreadId;
        var ranOn = 0;
        var result = creations.RunAsync("pod", "config", () =>
        {
            ranOn = Environment.CurrentManagedThreadId;
            return Task.FromResult("made");
        }, CancellationToken.None);
        Assert.Equal(caller, ranOn);
        Assert.Equal("made", await result);
        Assert.Equal(0, creations.Count);
    }
}
