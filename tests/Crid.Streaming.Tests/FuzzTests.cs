using Crid.Streaming.Tests.Client;
using Microsoft.Extensions.Logging;

namespace Crid.Streaming.Tests;

/// <summary>Hostile bytes after the upgrade: the server closes or carries on, never crashes, never leaks a process.</summary>
public sealed class FuzzTests
{
    [Fact]
    public async Task Random_frames_never_crash_the_server()
    {
        await using var t = await TestServer.StartAsync(new StreamingOptions { CreationTimeout = TimeSpan.FromSeconds(1), Linger = TimeSpan.FromMilliseconds(200) });
        var random = new Random(1234);
        var zlib = new ClientZlib();
        for (int round = 0; round < 150; round++)
        {
            await using var client = await TestServer.ConnectAsync(t.ExecUrl(["true"], stdin: true));
            try
            {
                for (int f = 0; f < 6; f++)
                    await client.SendRawAsync(Frame(random, round));
                // Either it is still talking (answers a PING) or it closed the connection.
                await Task.WhenAny(client.PingAsync(TimeSpan.FromSeconds(5)), client.Closed);
            }
            catch (IOException)
            {
                // It closed on us mid-way: a fine answer to garbage.
                await client.Closed.WaitAsync(TimeSpan.FromSeconds(5));
            }
        }
        Assert.Empty(t.Log.AtLeast(LogLevel.Error));
        Assert.DoesNotContain(t.Log.Lines, l => l.Message.Contains("crashed"));
        await ExecTests.WaitForAsync(() => t.Containers.ExecPids.All(ProtocolTests.Gone));
    }

    /// <summary>Mostly well-formed headers with damaged bodies, the kind of input that reaches the parsers.</summary>
    private static byte[] Frame(Random random, int round)
    {
        int kind = random.Next(5);
        byte[] payload = new byte[random.Next(0, kind == 0 ? 64 : 300)];
        random.NextBytes(payload);
        if (kind == 1 && payload.Length >= 10)
        {
            // A SYN_STREAM with a valid id and random header bytes.
            payload[0] = 0;
            payload[1] = 0;
            payload[2] = 0;
            payload[3] = (byte)(1 + 2 * random.Next(100));
        }
        return kind switch
        {
            4 => SpdyTestClient.Data((uint)random.Next(0, 50), (byte)random.Next(4), payload),
            _ => SpdyTestClient.Control((ushort)random.Next(0, 12), (byte)random.Next(4), payload),
        };
    }
}
