using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace Crid.Streaming.Tests.Client;

/// <summary>How the test client treats flow control.</summary>
internal enum FlowMode
{
    /// <summary>As Kubernetes' spdystream: never sends WINDOW_UPDATE or SETTINGS, ignores the server's windows.</summary>
    Spdystream,

    /// <summary>As SPDY/3.1 says: announces its window in SETTINGS, stays within the server's, and checks the server stays within its own.</summary>
    Strict,
}

/// <summary>The HTTP answer to the upgrade request; <see cref="Client"/> when it was 101.</summary>
internal sealed record HttpAnswer(int Status, Dictionary<string, List<string>> Headers, string Body, SpdyTestClient? Client)
{
    public string? Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var v) ? v[0] : null;
}

/// <summary>A frame the client received, for tests that look at the conversation itself.</summary>
internal sealed record ReceivedFrame(string Type, uint StreamId, byte Flags, uint Value, int Length);

/// <summary>
/// A SPDY/3.1 client written for the tests from the draft, sharing no code with the server: the
/// HTTP/1.1 upgrade, its own framing, its own zlib handling (<see cref="ClientZlib"/>), streams with
/// half-close and reset, PING and GOAWAY, and both kinds of peer flow control.
/// </summary>
internal sealed class SpdyTestClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _net;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ClientZlib _zlib;
    private readonly ConcurrentDictionary<uint, ClientStream> _streams = new();
    private readonly ConcurrentDictionary<uint, TaskCompletionSource> _pings = new();
    private readonly TaskCompletionSource<(uint LastGood, uint Status)> _goAway = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _flow = new();
    private readonly Task _reader;
    private uint _nextId = 1;
    private uint _nextPing = 1;
    private long _sessionSendWindow = 64 * 1024;
    private long _sessionReceiveWindow = 64 * 1024;
    private TaskCompletionSource _windowGrew = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private SpdyTestClient(Socket socket, NetworkStream net, FlowMode mode, int window, bool dictionary)
    {
        _socket = socket;
        _net = net;
        Mode = mode;
        Window = window;
        _zlib = new ClientZlib(dictionary);
        _reader = Task.Run(ReadLoopAsync);
    }

    public FlowMode Mode { get; }

    /// <summary>The receive window this client announces per stream (strict mode).</summary>
    public int Window { get; }

    /// <summary>Data frames that went beyond the window we gave the server (strict mode).</summary>
    public int FlowViolations { get; private set; }

    public ConcurrentQueue<ReceivedFrame> Frames { get; } = new();

    /// <summary>Completes when the server closes the TCP connection.</summary>
    public Task Closed => _reader;

    public Task<(uint LastGood, uint Status)> GoAway => _goAway.Task;

    /// <summary>POST (as kubectl and crictl) with the SPDY upgrade headers and the given subprotocols.</summary>
    public static async Task<HttpAnswer> UpgradeAsync(string url, IEnumerable<string> protocols, FlowMode mode = FlowMode.Spdystream,
        int window = 64 * 1024, string method = "POST", bool upgradeHeaders = true, bool dictionary = true)
    {
        var uri = new Uri(url);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host.Trim('[', ']'), uri.Port);
        var net = new NetworkStream(socket, ownsSocket: true);
        var request = new StringBuilder();
        request.Append($"{method} {uri.PathAndQuery} HTTP/1.1\r\nHost: {uri.Authority}\r\n");
        if (upgradeHeaders)
            request.Append("Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n");
        foreach (var p in protocols)
            request.Append($"X-Stream-Protocol-Version: {p}\r\n");
        request.Append("Content-Length: 0\r\n\r\n");
        await net.WriteAsync(Encoding.ASCII.GetBytes(request.ToString()));

        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await net.ReadAsync(one) == 0)
                throw new IOException("the server closed before answering: " + head);
            head.Append((char)one[0]);
        }
        var lines = head.ToString().Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        int status = int.Parse(lines[0].Split(' ')[1]);
        var headers = new Dictionary<string, List<string>>();
        foreach (var line in lines.Skip(1))
        {
            int colon = line.IndexOf(':');
            var name = line[..colon].Trim().ToLowerInvariant();
            if (!headers.TryGetValue(name, out var list))
                headers[name] = list = [];
            list.Add(line[(colon + 1)..].Trim());
        }
        if (status == 101)
        {
            var client = new SpdyTestClient(socket, net, mode, window, dictionary);
            if (mode == FlowMode.Strict)
                await client.SendSettingsAsync(window);
            return new HttpAnswer(status, headers, "", client);
        }
        string body = await ReadBodyAsync(net, headers);
        await net.DisposeAsync();
        return new HttpAnswer(status, headers, body, null);
    }

    private static async Task<string> ReadBodyAsync(NetworkStream net, Dictionary<string, List<string>> headers)
    {
        var body = new MemoryStream();
        if (headers.TryGetValue("content-length", out var cl))
        {
            var buffer = new byte[int.Parse(cl[0])];
            await net.ReadExactlyAsync(buffer);
            body.Write(buffer);
        }
        else if (headers.TryGetValue("transfer-encoding", out var te) && te[0].Contains("chunked"))
        {
            while (true)
            {
                var sizeLine = await ReadLineAsync(net);
                int size = Convert.ToInt32(sizeLine.Split(';')[0], 16);
                if (size == 0)
                {
                    await ReadLineAsync(net);
                    break;
                }
                var chunk = new byte[size];
                await net.ReadExactlyAsync(chunk);
                body.Write(chunk);
                await ReadLineAsync(net);
            }
        }
        return Encoding.UTF8.GetString(body.ToArray());
    }

    private static async Task<string> ReadLineAsync(NetworkStream net)
    {
        var line = new StringBuilder();
        var one = new byte[1];
        while (!line.ToString().EndsWith("\r\n", StringComparison.Ordinal))
        {
            if (await net.ReadAsync(one) == 0)
                throw new IOException("closed in the middle of a chunked body");
            line.Append((char)one[0]);
        }
        return line.ToString().TrimEnd();
    }

    // ---------------- streams ----------------

    /// <summary>Opens a stream (SYN_STREAM) and waits for the server's answer; throws when it resets the stream instead.</summary>
    public async Task<ClientStream> OpenAsync(IEnumerable<KeyValuePair<string, string>> headers, bool fin = false, TimeSpan? timeout = null)
    {
        var stream = await OpenNoWaitAsync(headers, fin);
        await stream.Replied.WaitAsync(timeout ?? TimeSpan.FromSeconds(30));
        return stream;
    }

    public async Task<ClientStream> OpenNoWaitAsync(IEnumerable<KeyValuePair<string, string>> headers, bool fin = false, uint? id = null)
    {
        await _writeLock.WaitAsync();
        try
        {
            uint streamId = id ?? _nextId;
            if (streamId % 2 == 1 && streamId >= _nextId)
                _nextId = streamId + 2;
            var stream = new ClientStream(this, streamId);
            lock (_flow)
                stream.SendWindow = 64 * 1024;
            _streams[streamId] = stream;
            var block = _zlib.Deflate(ClientZlib.EncodeBlock(headers.Select(h => new KeyValuePair<string, string>(h.Key.ToLowerInvariant(), h.Value))));
            var payload = new byte[10 + block.Length];
            BinaryPrimitives.WriteUInt32BigEndian(payload, streamId);
            block.CopyTo(payload, 10);
            await WriteFrameLockedAsync(Control(1, fin ? (byte)1 : (byte)0, payload));
            return stream;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public Task<ClientStream> OpenAsync(params (string Name, string Value)[] headers) =>
        OpenAsync(headers.Select(h => new KeyValuePair<string, string>(h.Name, h.Value)));

    /// <summary>A PING, answered by the server with the same id.</summary>
    public async Task PingAsync(TimeSpan timeout)
    {
        uint id;
        lock (_flow)
        {
            id = _nextPing;
            _nextPing += 2;
        }
        var reply = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _pings[id] = reply;
        var payload = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(payload, id);
        await WriteFrameAsync(Control(6, 0, payload));
        await reply.Task.WaitAsync(timeout);
    }

    public Task SendGoAwayAsync(uint lastGood = 0)
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(payload, lastGood);
        return WriteFrameAsync(Control(7, 0, payload));
    }

    public Task SendRawAsync(byte[] bytes) => WriteFrameAsync(bytes);

    /// <summary>Drops the TCP connection without a word, as a client that crashed or lost its network.</summary>
    public void Vanish()
    {
        _socket.LingerState = new LingerOption(true, 0);
        _socket.Close();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        _socket.Dispose();
        try
        {
            await _reader.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception)
        {
        }
    }

    // ---------------- frames out ----------------

    internal static byte[] Control(ushort type, byte flags, byte[] payload)
    {
        var frame = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, 0x8003);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), type);
        frame[4] = flags;
        frame[5] = (byte)(payload.Length >> 16);
        frame[6] = (byte)(payload.Length >> 8);
        frame[7] = (byte)payload.Length;
        payload.CopyTo(frame, 8);
        return frame;
    }

    internal static byte[] Data(uint streamId, byte flags, ReadOnlySpan<byte> data)
    {
        var frame = new byte[8 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, streamId);
        frame[4] = flags;
        frame[5] = (byte)(data.Length >> 16);
        frame[6] = (byte)(data.Length >> 8);
        frame[7] = (byte)data.Length;
        data.CopyTo(frame.AsSpan(8));
        return frame;
    }

    private Task SendSettingsAsync(int window)
    {
        var payload = new byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(payload, 1);
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(4), 7); // SETTINGS_INITIAL_WINDOW_SIZE
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(8), (uint)window);
        return WriteFrameAsync(Control(4, 0, payload));
    }

    internal Task SendWindowUpdateAsync(uint streamId, int delta)
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(payload, streamId);
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(4), (uint)delta);
        return WriteFrameAsync(Control(9, 0, payload));
    }

    internal Task SendResetAsync(uint streamId, uint status)
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(payload, streamId);
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(4), status);
        return WriteFrameAsync(Control(3, 0, payload));
    }

    internal async Task SendDataAsync(ClientStream stream, ReadOnlyMemory<byte> data, bool fin)
    {
        int offset = 0;
        do
        {
            int chunk = Math.Min(data.Length - offset, 32 * 1024);
            if (Mode == FlowMode.Strict && chunk > 0)
                chunk = await TakeWindowAsync(stream, chunk);
            bool last = offset + chunk == data.Length;
            await WriteFrameAsync(Data(stream.Id, fin && last ? (byte)1 : (byte)0, data.Span.Slice(offset, chunk)));
            offset += chunk;
        }
        while (offset < data.Length);
    }

    private async Task<int> TakeWindowAsync(ClientStream stream, int wanted)
    {
        while (true)
        {
            Task grew;
            lock (_flow)
            {
                long available = Math.Min(stream.SendWindow, _sessionSendWindow);
                if (available > 0)
                {
                    int n = (int)Math.Min(available, wanted);
                    stream.SendWindow -= n;
                    _sessionSendWindow -= n;
                    return n;
                }
                grew = _windowGrew.Task;
            }
            await grew.WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    private async Task WriteFrameAsync(byte[] frame)
    {
        await _writeLock.WaitAsync();
        try
        {
            await WriteFrameLockedAsync(frame);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task WriteFrameLockedAsync(byte[] frame) => await _net.WriteAsync(frame);

    /// <summary>The application read <paramref name="n"/> bytes of the stream: strict mode gives the window back.</summary>
    internal async Task ConsumedAsync(ClientStream stream, int n)
    {
        if (Mode != FlowMode.Strict || n == 0)
            return;
        lock (_flow)
        {
            stream.ReceiveWindow += n;
            _sessionReceiveWindow += n;
        }
        try
        {
            if (!stream.FinReceived.IsCompleted)
                await SendWindowUpdateAsync(stream.Id, n);
            await SendWindowUpdateAsync(0, n);
        }
        catch (IOException)
        {
        }
    }

    // ---------------- frames in ----------------

    private async Task ReadLoopAsync()
    {
        var header = new byte[8];
        try
        {
            while (true)
            {
                await _net.ReadExactlyAsync(header);
                uint first = BinaryPrimitives.ReadUInt32BigEndian(header);
                byte flags = header[4];
                int length = (header[5] << 16) | (header[6] << 8) | header[7];
                var payload = new byte[length];
                await _net.ReadExactlyAsync(payload);
                if ((first & 0x80000000) == 0)
                {
                    await OnDataAsync(first & 0x7FFFFFFF, flags, payload);
                    continue;
                }
                ushort version = (ushort)((first >> 16) & 0x7FFF);
                ushort type = (ushort)(first & 0xFFFF);
                if (version != 3)
                    throw new InvalidDataException($"server sent a version {version} frame");
                OnControl(type, flags, payload);
            }
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or ObjectDisposedException or SocketException)
        {
            // The connection is over.
        }
        finally
        {
            foreach (var s in _streams.Values)
                s.ConnectionClosed();
        }
    }

    private void OnControl(ushort type, byte flags, byte[] p)
    {
        uint Word(int at) => BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(at));
        switch (type)
        {
            case 2: // SYN_REPLY
            {
                uint id = Word(0) & 0x7FFFFFFF;
                _zlib.Inflate(p[4..]);
                Frames.Enqueue(new("SYN_REPLY", id, flags, 0, p.Length));
                if (_streams.TryGetValue(id, out var s))
                    s.OnReply((flags & 1) != 0);
                break;
            }
            case 3: // RST_STREAM
            {
                uint id = Word(0) & 0x7FFFFFFF;
                Frames.Enqueue(new("RST_STREAM", id, flags, Word(4), p.Length));
                if (_streams.TryGetValue(id, out var s))
                    s.OnReset(Word(4));
                break;
            }
            case 4:
                Frames.Enqueue(new("SETTINGS", 0, flags, 0, p.Length));
                break;
            case 6: // PING
            {
                uint id = Word(0);
                Frames.Enqueue(new("PING", 0, flags, id, p.Length));
                if (_pings.TryRemove(id, out var tcs))
                    tcs.TrySetResult();
                break;
            }
            case 7: // GOAWAY
                Frames.Enqueue(new("GOAWAY", Word(0), flags, Word(4), p.Length));
                _goAway.TrySetResult((Word(0), Word(4)));
                break;
            case 8: // HEADERS
                _zlib.Inflate(p[4..]);
                Frames.Enqueue(new("HEADERS", Word(0) & 0x7FFFFFFF, flags, 0, p.Length));
                break;
            case 9: // WINDOW_UPDATE
            {
                uint id = Word(0) & 0x7FFFFFFF;
                int delta = (int)(Word(4) & 0x7FFFFFFF);
                Frames.Enqueue(new("WINDOW_UPDATE", id, flags, (uint)delta, p.Length));
                TaskCompletionSource grew;
                lock (_flow)
                {
                    if (id == 0)
                        _sessionSendWindow += delta;
                    else if (_streams.TryGetValue(id, out var s))
                        s.SendWindow += delta;
                    grew = _windowGrew;
                    _windowGrew = new(TaskCreationOptions.RunContinuationsAsynchronously);
                }
                grew.TrySetResult();
                break;
            }
            default:
                Frames.Enqueue(new("UNKNOWN" + type, 0, flags, 0, p.Length));
                break;
        }
    }

    private async Task OnDataAsync(uint id, byte flags, byte[] data)
    {
        Frames.Enqueue(new("DATA", id, flags, 0, data.Length));
        if (!_streams.TryGetValue(id, out var stream))
            return;
        if (Mode == FlowMode.Strict)
        {
            lock (_flow)
            {
                stream.ReceiveWindow -= data.Length;
                _sessionReceiveWindow -= data.Length;
                if (stream.ReceiveWindow < 0 || _sessionReceiveWindow < 0)
                    FlowViolations++;
            }
        }
        await stream.OnDataAsync(data, (flags & 1) != 0);
    }

    /// <summary>One stream the client opened.</summary>
    internal sealed class ClientStream
    {
        private readonly SpdyTestClient _client;
        private readonly Channel<byte[]> _incoming = Channel.CreateUnbounded<byte[]>();
        private readonly TaskCompletionSource _replied = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _fin = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private byte[] _leftover = [];
        private int _leftoverAt;

        public ClientStream(SpdyTestClient client, uint id)
        {
            _client = client;
            Id = id;
            ReceiveWindow = client.Mode == FlowMode.Strict ? client.Window : int.MaxValue;
        }

        public uint Id { get; }

        public long SendWindow { get; set; }

        public long ReceiveWindow { get; set; }

        /// <summary>Completes on SYN_REPLY; fails on RST_STREAM before it.</summary>
        public Task Replied => _replied.Task;

        /// <summary>Completes when the server closes its half (FIN), resets the stream or the connection ends.</summary>
        public Task FinReceived => _fin.Task;

        public uint? ResetStatus { get; private set; }

        public bool ConnectionLost { get; private set; }

        public Task WriteAsync(ReadOnlyMemory<byte> data) => _client.SendDataAsync(this, data, fin: false);

        public Task WriteAsync(string text) => WriteAsync(Encoding.UTF8.GetBytes(text));

        /// <summary>Half-close: an empty data frame with FLAG_FIN.</summary>
        public Task CloseAsync() => _client.SendDataAsync(this, ReadOnlyMemory<byte>.Empty, fin: true);

        public Task ResetAsync(uint status = 5) => _client.SendResetAsync(Id, status);

        public async Task<int> ReadAsync(Memory<byte> into)
        {
            if (_leftoverAt >= _leftover.Length)
            {
                if (!await _incoming.Reader.WaitToReadAsync())
                    return 0;
                _leftover = await _incoming.Reader.ReadAsync();
                _leftoverAt = 0;
            }
            int n = Math.Min(into.Length, _leftover.Length - _leftoverAt);
            _leftover.AsMemory(_leftoverAt, n).CopyTo(into);
            _leftoverAt += n;
            await _client.ConsumedAsync(this, n);
            return n;
        }

        /// <summary>Everything until the server's FIN (or reset).</summary>
        public async Task<byte[]> ReadAllAsync(TimeSpan? timeout = null)
        {
            var all = new MemoryStream();
            var buffer = new byte[64 * 1024];
            using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
            while (true)
            {
                int n = await ReadAsync(buffer).WaitAsync(cts.Token);
                if (n == 0)
                    return all.ToArray();
                all.Write(buffer, 0, n);
            }
        }

        public async Task<string> ReadAllTextAsync(TimeSpan? timeout = null) => Encoding.UTF8.GetString(await ReadAllAsync(timeout));

        internal void OnReply(bool fin)
        {
            _replied.TrySetResult();
            if (fin)
                End();
        }

        internal void OnReset(uint status)
        {
            ResetStatus = status;
            _replied.TrySetException(new IOException($"stream {Id} reset with status {status}"));
            End();
        }

        internal async Task OnDataAsync(byte[] data, bool fin)
        {
            if (!_replied.Task.IsCompleted)
                throw new InvalidDataException($"data on stream {Id} before its SYN_REPLY");
            if (data.Length > 0)
                await _incoming.Writer.WriteAsync(data);
            if (fin)
                End();
        }

        internal void ConnectionClosed()
        {
            ConnectionLost = true;
            _replied.TrySetException(new IOException("the connection closed"));
            End();
        }

        private void End()
        {
            _incoming.Writer.TryComplete();
            _fin.TrySetResult();
        }
    }
}
