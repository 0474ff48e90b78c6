using Crid.Streaming.Tests.Client;

namespace Crid.Streaming.Tests;

/// <summary>Counts the test process's own descriptors, so it runs with no other test beside it.</summary>
[CollectionDefinition("alone", DisableParallelization = true)]
public sealed class AloneCollection;

[Collection("alone")]
public sealed class LeakTests
{
    [Fact]
    public async Task A_client_that_vanishes_leaves_no_process_and_no_descriptor()
    {
        await using var t = await TestServer.StartAsync();
        // Warm up once, so lazily opened descriptors (the pool's, the runtime's) are not counted as leaks.
        await using (var warm = await TestServer.ConnectAsync(t.ExecUrl(["true"])))
            await ExecClient.RunAsync(warm, false, true, false);
        await Task.Delay(500);
        int before = ProtocolTests.OpenDescriptors();
        int warmed = t.Containers.ExecPids.Count;
        for (int i = 0; i < 3; i++)
        {
            var client = await TestServer.ConnectAsync(i == 2 ? t.ExecUrl(["cat"], stdin: true, tty: true) : t.ExecUrl(["cat"], stdin: true, stderr: true));
            await client.OpenAsync(("streamType", "error"));
            var stdin = await client.OpenAsync(("streamType", "stdin"));
            var stdout = await client.OpenAsync(("streamType", "stdout"));
            if (i == 2)
                await client.OpenAsync(("streamType", "resize"));
            else
                await client.OpenAsync(("streamType", "stderr"));
            await stdin.WriteAsync("half a line");
            await ExecTests.WaitForAsync(() => t.Containers.ExecPids.Count == warmed + i + 1);
            client.Vanish();
        }
        await ExecTests.WaitForAsync(() => t.Containers.ExecPids.All(ProtocolTests.Gone), what: () => "alive: " + string.Join(",", t.Containers.ExecPids.Where(p => !ProtocolTests.Gone(p))));
        await ExecTests.WaitForAsync(() => ProtocolTests.OpenDescriptors() <= before, seconds: 15, what: () => $"{ProtocolTests.OpenDescriptors()} descriptors, {before} before: {Descriptors()}");
    }

    private static string Descriptors() => string.Join(" ", Directory.GetFiles("/proc/self/fd").Select(f =>
    {
        try { return new FileInfo(f).LinkTarget; } catch (IOException) { return "?"; }
    }));
}
