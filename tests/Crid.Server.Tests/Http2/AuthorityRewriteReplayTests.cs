using System.Net.Sockets;
using Crid.Server.Http2;
using Crid.Tests.Http2;
using Grpc.Net.Client;
using Runtime.V1;

namespace Crid.Server.Tests.Http2;

/// <summary>
/// Recorded crictl 1.26 connections (socket path as <c>:authority</c>) replayed byte for byte, and
/// variants of them, against a real Kestrel + Grpc.AspNetCore server on a Unix socket.
/// </summary>
public sealed class AuthorityRewriteReplayTests
{
    public static TheoryData<string> Recordings() => TestPaths.RecordingNames();

    private static byte[] Recording(string name) => TestPaths.Recording(name);

    [Theory]
    [MemberData(nameof(Recordings))]
    public async Task Recorded_ByteForByte_EveryStreamAnswered(string name)
    {
        byte[] bytes = Recording(name);
        Assert.All(RecordedConnection.RequestBlocks(bytes), b => Assert.StartsWith("/", b.Headers.Single(h => h.Key == ":authority").Value));
        await using var server = await GrpcTestServer.StartAsync(rewriteAuthority: true);
        await ReplayAndAssertAnsweredAsync(server, bytes);
    }

    [Theory]
    [MemberData(nameof(Recordings))]
    public async Task Recorded_WrittenOneByteAtATime_EveryStreamAnswered(string name)
    {
        await using var server = await GrpcTestServer.StartAsync(rewriteAuthority: true);
        await ReplayAndAssertAnsweredAsync(server, Recording(name), writeChunkSize: 1);
    }

    [Theory]
    [MemberData(nameof(Recordings))]
    public async Task WithoutRewrite_KestrelResetsSocketPathAuthority(string name)
    {
        // The control: proves the problem the adapter exists for (dotnet/aspnetcore#47043).
        await using var server = await GrpcTestServer.StartAsync(rewriteAuthority: false);
        var result = await H2Client.ReplayAsync(server.SocketPath, Recording(name));
        Assert.False(result.TimedOut, result.ToString());
        Assert.NotEmpty(result.Streams);
        foreach (var stream in result.Streams.Values)
        {
            Assert.True(stream.RstStreamErrorCodes.SequenceEqual([1u]), $"expected RST_STREAM PROTOCOL_ERROR: {stream}");
            Assert.Empty(stream.HeaderBlocks);
        }
    }

    public static TheoryData<string, string> Variants()
    {
        var data = new TheoryData<string, string>();
        foreach (string file in TestPaths.RecordedConnections())
        {
            foreach (string variant in new[] { "empty-authority", "continuation", "continuation-byte-by-byte", "padded", "priority", "padded-priority", "size-updates", "no-huffman-no-indexing", "never-indexed", "large-block" })
            {
                data.Add(Path.GetFileName(file), variant);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public async Task Variant_EveryStreamAnswered(string name, string variant)
    {
        byte[] recorded = Recording(name);
        byte[] bytes = variant switch
        {
            "empty-authority" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), h => RecordedConnection.WithAuthority(h, "")),
            "continuation" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), framing: RecordedConnection.Split(3)),
            "continuation-byte-by-byte" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), framing: RecordedConnection.Split(1000)),
            "padded" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), framing: RecordedConnection.PaddedOrPrioritized(padLength: 17, priority: false)),
            "priority" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), framing: RecordedConnection.PaddedOrPrioritized(padLength: -1, priority: true)),
            "padded-priority" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), framing: RecordedConnection.PaddedOrPrioritized(padLength: 0, priority: true)),
            // A size update to 0 then back to 4096 before the second block (RFC 7541 Section 4.2);
            // then a table of 100 octets, which evicts on almost every insertion.
            "size-updates" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), sizeUpdates: i => i switch { 0 => [], 1 => [0, 4096], _ => [100] }),
            "no-huffman-no-indexing" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(huffman: false, TestHpackEncoder.Indexing.None)),
            "never-indexed" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(huffman: true, TestHpackEncoder.Indexing.Never)),
            // Three 7000-octet fields: Huffman keeps the client's block in one frame, our output needs CONTINUATION.
            "large-block" => RecordedConnection.Rewrite(recorded, new TestHpackEncoder(huffman: true, TestHpackEncoder.Indexing.None),
                h => [.. h, new("x-a", new string('a', 7000)), new("x-b", new string('a', 7000)), new("x-c", new string('a', 7000))]),
            _ => throw new ArgumentOutOfRangeException(nameof(variant)),
        };
        Assert.NotEqual(recorded, bytes);

        await using var server = await GrpcTestServer.StartAsync(rewriteAuthority: true);
        await ReplayAndAssertAnsweredAsync(server, bytes);
    }

    [Fact]
    public void Variant_ReallyUsesContinuationAndPadding()
    {
        // Guards the variants above against silently testing nothing.
        byte[] recorded = Recording("crictl-1.26-version.c2s");
        var split = H2Client.ParseClientStream(RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), framing: RecordedConnection.Split(3)));
        Assert.Contains(split, f => f.Type == H2Frame.Continuation);
        Assert.Contains(split, f => f.Type == H2Frame.Headers && !f.HasFlag(H2Frame.FlagEndHeaders));
        var padded = H2Client.ParseClientStream(RecordedConnection.Rewrite(recorded, new TestHpackEncoder(), framing: RecordedConnection.PaddedOrPrioritized(5, true)));
        Assert.All(padded.Where(f => f.Type == H2Frame.Headers), f => Assert.True(f.HasFlag(H2Frame.FlagPadded) && f.HasFlag(H2Frame.FlagPriority)));
    }

    [Fact]
    public async Task GrpcNetClient_LocalhostAuthority_StillWorks()
    {
        await using var server = await GrpcTestServer.StartAsync(rewriteAuthority: true);
        using var channel = CreateChannel(server.SocketPath);
        var client = new RuntimeService.RuntimeServiceClient(channel);

        var response = await client.VersionAsync(new VersionRequest { Version = "v1" });
        Assert.Equal(TestRuntimeService.RuntimeName, response.RuntimeName);
        Assert.Equal("v1", response.RuntimeApiVersion);

        // Many calls on one connection, some concurrent: the HPACK contexts must stay in step.
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal("v1", (await client.VersionAsync(new VersionRequest { Version = "v1" })).RuntimeApiVersion);
        }
        // A 1 MB request body: many DATA frames and WINDOW_UPDATEs streamed through the pump.
        Assert.Equal("v1", (await client.VersionAsync(new VersionRequest { Version = new string('x', 1_000_000) })).RuntimeApiVersion);

        var concurrent = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => client.VersionAsync(new VersionRequest { Version = "v1" }).ResponseAsync));
        Assert.All(concurrent, r => Assert.Equal("v1", r.RuntimeApiVersion));
        Assert.Empty(server.Warnings);
    }

    [Fact]
    public async Task MalformedHeaderBlock_ClosesTheConnection_ServerKeepsServing()
    {
        await using var server = await GrpcTestServer.StartAsync(rewriteAuthority: true);
        // SETTINGS, SETTINGS ACK, then HEADERS whose block references HPACK index 0 (RFC 7541 Section 6.1).
        byte[] bad = [.. H2Client.Preface, .. HpackDecoderTests.Hex("000000 04 00 00000000 000000 04 01 00000000 000001 01 05 00000001 80")];
        var result = await H2Client.ReplayAsync(server.SocketPath, bad);
        Assert.True(result.ConnectionClosed, result.ToString());
        Assert.False(result.TimedOut, result.ToString());
        Assert.Empty(result.Streams[1].HeaderBlocks);

        // A frame interleaved in a header block (RFC 7540 Section 6.10).
        byte[] interleaved = [.. H2Client.Preface, .. HpackDecoderTests.Hex("000000 04 00 00000000 000001 01 00 00000001 82 000008 06 00 00000000 0000000000000000")];
        result = await H2Client.ReplayAsync(server.SocketPath, interleaved);
        Assert.True(result.ConnectionClosed, result.ToString());

        await ReplayAndAssertAnsweredAsync(server, Recording("crictl-1.26-version.c2s"));
        Assert.Empty(server.Warnings);
    }

    private static async Task ReplayAndAssertAnsweredAsync(GrpcTestServer server, byte[] bytes, int? writeChunkSize = null)
    {
        var result = await H2Client.ReplayAsync(server.SocketPath, bytes, writeChunkSize: writeChunkSize);
        Assert.False(result.TimedOut, "timed out: " + result);
        Assert.False(result.ConnectionClosed, "connection closed: " + result);
        Assert.True(result.GoAway is null, "GOAWAY: " + result);
        Assert.NotEmpty(result.Streams);
        foreach (var stream in result.Streams.Values)
        {
            Assert.True(stream.RstStreamErrorCodes.Count == 0, "RST_STREAM: " + stream);
            Assert.True(stream.Ended, "not ended: " + stream);
            Assert.True(stream.Status == "200", ":status: " + stream);
            Assert.True(stream.GrpcStatus is not null, "no grpc-status: " + stream);
            // The server always ends with a HEADERS frame carrying grpc-status (trailers, or trailers-only).
            var last = stream.Frames[^1];
            Assert.True(last.Type == H2Frame.Headers && (last.Flags & H2Frame.FlagEndStream) != 0, "last frame: " + stream);
            Assert.Contains(stream.HeaderBlocks[^1], h => h.Key == "grpc-status");

            if (stream.Path == "/runtime.v1.RuntimeService/Version")
            {
                Assert.True(stream.GrpcStatus == "0", "Version failed: " + stream);
                Assert.Equal([H2Frame.Headers, H2Frame.Data, H2Frame.Headers], CollapseData(stream.Frames.Select(f => f.Type)));
                var response = VersionResponse.Parser.ParseFrom(Assert.Single(stream.GrpcMessages()));
                Assert.Equal(TestRuntimeService.RuntimeName, response.RuntimeName);
                Assert.Equal("v1", response.RuntimeApiVersion);
            }
        }
        Assert.Empty(server.Warnings);
    }

    /// <summary>HEADERS, DATA..., HEADERS with runs of DATA frames counted as one.</summary>
    private static List<byte> CollapseData(IEnumerable<byte> types)
    {
        var collapsed = new List<byte>();
        foreach (byte t in types)
        {
            if (t == H2Frame.Data && collapsed.Count > 0 && collapsed[^1] == H2Frame.Data)
            {
                continue;
            }
            collapsed.Add(t);
        }
        return collapsed;
    }

    private static GrpcChannel CreateChannel(string socketPath)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
    }
}
