using System.Net;

namespace Crid.Images.Registry;

/// <summary>
/// A layer blob as one stream, however many connections it takes: a connection that breaks,
/// stalls past the idle timeout or ends early is reopened with a Range request from the byte
/// reached (a registry that ignores Range sends it all again, and the bytes already read are
/// skipped). Never yields more than the descriptor's size; the digest is checked by the reader.
/// </summary>
internal sealed class BlobStream : Stream
{
    public const int MaxBreaks = 3;

    private readonly RegistryClient _client;
    private readonly RegistryEndpoint _endpoint;
    private readonly Descriptor _blob;
    private readonly Credentials? _creds;
    private readonly CancellationToken _ct;
    private HttpResponseMessage? _response;
    private Stream? _body;
    private long _position;
    private int _breaks;

    public BlobStream(RegistryClient client, RegistryEndpoint endpoint, Descriptor blob, Credentials? creds, CancellationToken ct)
    {
        _client = client;
        _endpoint = endpoint;
        _blob = blob;
        _creds = creds;
        _ct = ct;
    }

    /// <summary>How often the transfer was resumed.</summary>
    public int Resumes => _breaks;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => _blob.Size;
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    // The unpacker runs on a thread of its own, where waiting for the network is fine.
    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count), _ct).AsTask().GetAwaiter().GetResult();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.Length == 0)
            return 0;
        while (true)
        {
            _ct.ThrowIfCancellationRequested();
            if (_position == _blob.Size && _body is null)
                return 0;
            if (_body is null)
            {
                await OpenAsync().ConfigureAwait(false);
                continue;
            }
            int n;
            using (var idle = CancellationTokenSource.CreateLinkedTokenSource(_ct))
            {
                idle.CancelAfter(_client.IdleTimeout);
                try
                {
                    n = await _body.ReadAsync(buffer, idle.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!_ct.IsCancellationRequested)
                {
                    await BreakAsync($"no byte for {_client.IdleTimeout.TotalSeconds:0.#} s").ConfigureAwait(false);
                    continue;
                }
                catch (Exception e) when (e is IOException or HttpRequestException)
                {
                    await BreakAsync(e.Message).ConfigureAwait(false);
                    continue;
                }
            }
            if (n == 0)
            {
                if (_position == _blob.Size)
                {
                    Close(_response);
                    return 0;
                }
                await BreakAsync($"the connection ended at byte {_position} of {_blob.Size}").ConfigureAwait(false);
                continue;
            }
            if (_position + n > _blob.Size)
                throw new RegistryException($"blob {_blob.Digest} is longer than the {_blob.Size} bytes its descriptor gives; refused");
            _position += n;
            return n;
        }
    }

    private async Task OpenAsync()
    {
        HttpResponseMessage response;
        try
        {
            response = await _client.OpenBlobAsync(_endpoint, _blob.Digest, _position, _creds, _ct).ConfigureAwait(false);
        }
        catch (RegistryException e) when (e.InnerException is HttpRequestException || e.Message.Contains("no answer", StringComparison.Ordinal))
        {
            await BreakAsync(e.Message).ConfigureAwait(false);
            return;
        }
        var status = (int)response.StatusCode;
        if (status is 429 or >= 500)
        {
            response.Dispose();
            await BreakAsync($"{status} {response.ReasonPhrase}").ConfigureAwait(false);
            return;
        }
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            response.Dispose();
            throw new RegistryException($"{_endpoint}: blob {_blob.Digest} not found (404)");
        }
        if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.PartialContent))
        {
            response.Dispose();
            throw new RegistryException($"{_endpoint}: blob {_blob.Digest}: {status} {response.ReasonPhrase}");
        }
        var body = await response.Content.ReadAsStreamAsync(_ct).ConfigureAwait(false);
        var start = response.StatusCode == HttpStatusCode.PartialContent ? response.Content.Headers.ContentRange?.From ?? 0 : 0;
        if (start > _position)
        {
            response.Dispose();
            throw new RegistryException($"{_endpoint}: blob {_blob.Digest}: asked for bytes from {_position}, got them from {start}");
        }
        _response = response;
        _body = body;
        // A full answer (or a range that starts early): skip what was already read.
        var skip = _position - start;
        var scratch = new byte[81920];
        while (skip > 0)
        {
            int n;
            using (var idle = CancellationTokenSource.CreateLinkedTokenSource(_ct))
            {
                idle.CancelAfter(_client.IdleTimeout);
                try
                {
                    n = await body.ReadAsync(scratch.AsMemory(0, (int)Math.Min(skip, scratch.Length)), idle.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or HttpRequestException or OperationCanceledException && !_ct.IsCancellationRequested)
                {
                    await BreakAsync(e.Message).ConfigureAwait(false);
                    return;
                }
            }
            if (n == 0)
            {
                await BreakAsync($"the connection ended at byte {_position - skip} of {_blob.Size}").ConfigureAwait(false);
                return;
            }
            skip -= n;
        }
    }

    private async Task BreakAsync(string reason)
    {
        Close(_response);
        if (++_breaks > MaxBreaks)
            throw new RegistryException($"blob {_blob.Digest} from {_endpoint}: {reason}; gave up after {MaxBreaks} retries");
        await Task.Delay(TimeSpan.FromMilliseconds(200 * _breaks), _ct).ConfigureAwait(false);
    }

    private void Close(HttpResponseMessage? response)
    {
        _body?.Dispose();
        _body = null;
        response?.Dispose();
        _response = null;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            Close(_response);
        base.Dispose(disposing);
    }
}
