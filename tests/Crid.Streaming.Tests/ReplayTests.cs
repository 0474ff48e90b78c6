using System.Buffers.Binary;
using System.Text;
using Crid.Streaming.Spdy;
using Microsoft.Extensions.Logging.Abstractions;

namespace Crid.Streaming.Tests;

/// <summary>
/// What a real Kubernetes client sends, byte for byte: testdata/streaming/crictl-portforward.c2s is
/// everything crictl v1.26.1 (client-go's spdystream, Go's zlib with the SPDY dictionary) wrote after
/// its upgrade request during `crictl port-forward POD 18080:80` while curl made 23 requests through
/// it (recorded with strace against crid). The server must read all of it as the client meant it.
/// </summary>
public sealed class ReplayTests
{
    private static string Recording => Path.Combine(RepoRoot(), "testdata", "streaming", "crictl-portforward.c2s");

    [Fact]
    public async Task A_recorded_crictl_port_forward_reads_as_23_pairs_with_their_requests()
    {
        var recorded = await File.ReadAllBytesAsync(Recording);
        var transport = new ReplayTransport(recorded);
        var connection = new SpdyConnection(transport, new SpdyOptions(), NullLogger.Instance, () => { });
        connection.Start();
        var streams = new List<SpdyStream>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        for (int i = 0; i < 46; i++)
            streams.Add((await connection.AcceptStreamAsync(timeout.Token))!);

        Assert.All(streams, s => Assert.Equal("80", s.Headers.Get("port")));
        var pairs = streams.GroupBy(s => s.Headers.Get("requestID")).ToList();
        Assert.Equal(23, pairs.Count);
        foreach (var pair in pairs)
        {
            Assert.Equal(["data", "error"], pair.Select(s => s.Headers.Get("streamType")).Order());
            var data = pair.Single(s => s.Headers.Get("streamtype") == "data");
            var request = new MemoryStream();
            var buffer = new byte[4096];
            // Each curl request arrives whole; the client then closed its half (FIN).
            int n;
            while ((n = await data.ReadAsync(buffer, timeout.Token)) > 0)
                request.Write(buffer, 0, n);
            var text = Encoding.ASCII.GetString(request.ToArray());
            Assert.StartsWith("GET /index.html HTTP/1.1\r\n", text);
            Assert.EndsWith("\r\n\r\n", text);
        }
        // The one PING in the recording was answered with its id.
        await ExecTests.WaitForAsync(() => transport.Written().Length > 0);
        var written = transport.Written();
        Assert.Equal(0x80030006u, BinaryPrimitives.ReadUInt32BigEndian(written));
        transport.End();
        await connection.DisposeAsync();
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cri.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (the folder holding Cri.sln)");
    }

    /// <summary>Reads the recording, then waits (the client is still there) until ended; keeps what the server writes.</summary>
    private sealed class ReplayTransport(byte[] recorded) : Stream
    {
        private readonly MemoryStream _in = new(recorded);
        private readonly MemoryStream _out = new();
        private readonly TaskCompletionSource _ended = new();

        public byte[] Written()
        {
            lock (_out)
                return _out.ToArray();
        }

        public void End() => _ended.TrySetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int n = _in.Read(buffer.Span);
            if (n > 0)
                return n;
            await _ended.Task.WaitAsync(cancellationToken);
            return 0;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            lock (_out)
                _out.Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
