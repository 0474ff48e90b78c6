using Crid.Tests.Http2;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// The recorded crictl 1.26 connections, which send the socket path as :authority, replayed byte for
/// byte (and in reframed variants) into the real daemon: every stream must be answered with HEADERS,
/// DATA and trailers carrying grpc-status, never RST_STREAM.
/// </summary>
public sealed class CrictlReplayTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(RepoPaths.Vectors, "h2"), "*.c2s").Order())
        {
            foreach (var variant in new[] { "as-recorded", "empty-authority", "continuation", "padded" })
                data.Add(Path.GetFileName(file), variant);
        }
        return data;
    }

    [Fact]
    public void Both_recordings_are_there() => Assert.True(Cases().Count >= 8);

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Every_stream_is_answered(string name, string variant)
    {
        var recorded = File.ReadAllBytes(Path.Combine(RepoPaths.Vectors, "h2", name));
        var bytes = variant switch
        {
            "as-recorded" => recorded,
            "empty-authority" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), h => RecordedConnection.WithAuthority(h, "")),
            "continuation" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), framing: RecordedConnection.Split(3)),
            "padded" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), framing: RecordedConnection.PaddedOrPrioritized(padLength: 17, priority: false)),
            _ => throw new ArgumentOutOfRangeException(nameof(variant)),
        };
        await using var d = await DaemonProcess.StartAsync();
        var result = await H2Client.ReplayAsync(d.Socket, bytes, TimeSpan.FromSeconds(10));
        Assert.False(result.TimedOut, result.ToString());
        Assert.True(result.GoAway is null, result.ToString());
        Assert.True(result.Streams.Count >= 2, result.ToString());
        foreach (var stream in result.Streams.Values)
        {
            Assert.Empty(stream.RstStreamErrorCodes);
            Assert.Equal("200", stream.Status);
            Assert.Equal("0", stream.GrpcStatus);
            var kinds = stream.Frames.Select(f => f.Type).Distinct().ToList();
            Assert.Equal([H2Frame.Headers, H2Frame.Data], kinds);
            Assert.Equal(H2Frame.Headers, stream.Frames[^1].Type);
            if (stream.Path == "/runtime.v1.RuntimeService/Version")
                Assert.Equal("crid", VersionResponse.Parser.ParseFrom(Assert.Single(stream.GrpcMessages())).RuntimeName);
            if (stream.Path == "/runtime.v1.RuntimeService/RunPodSandbox")
            {
                var id = RunPodSandboxResponse.Parser.ParseFrom(Assert.Single(stream.GrpcMessages())).PodSandboxId;
                await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
            }
        }
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
    }
}
