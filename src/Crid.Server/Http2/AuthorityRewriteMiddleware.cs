using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Crid.Server.Http2;

/// <summary>Installs the <c>:authority</c> rewrite (see <see cref="Http2FrameRewriter"/>) on a Kestrel endpoint.</summary>
public static class AuthorityRewriteExtensions
{
    /// <summary>
    /// Rewrites every HTTP/2 request's <c>:authority</c> to <c>localhost</c> before Kestrel parses it,
    /// so that clients sending a Unix socket path as authority (kubelet and crictl up to v1.30,
    /// grpcurl) are not reset with PROTOCOL_ERROR (dotnet/aspnetcore#47043). Meant for endpoints with
    /// <c>Protocols = HttpProtocols.Http2</c> (HTTP/2 with prior knowledge, as on a Unix socket).
    /// </summary>
    /// <remarks>
    /// Connection middleware runs in the order it is added: on a TLS endpoint this must come after
    /// <c>UseHttps</c>, so that it sees plaintext. A connection that does not start with the HTTP/2
    /// preface (HTTP/1.x on a mixed endpoint) is passed through untouched.
    /// </remarks>
    public static ListenOptions UseAuthorityRewrite(this ListenOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ILoggerFactory loggers = options.ApplicationServices.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance;
        var middleware = new AuthorityRewriteMiddleware(
            options.KestrelServerOptions.Limits.Http2,
            loggers.CreateLogger(typeof(AuthorityRewriteMiddleware).FullName!));
        options.Use(next => context => middleware.OnConnectionAsync(context, next));
        return options;
    }
}

/// <summary>
/// Connection middleware: puts a pipe between the socket and Kestrel's HTTP/2 code and pumps the
/// client's bytes through an <see cref="Http2FrameRewriter"/>. Server-to-client bytes go straight
/// to the socket.
/// </summary>
/// <param name="limits">
/// Read at each connection, since they may be set after the endpoint: HeaderTableSize is the
/// SETTINGS_HEADER_TABLE_SIZE Kestrel advertises, so the most the client's HPACK encoder may use;
/// MaxFrameSize is Kestrel's SETTINGS_MAX_FRAME_SIZE, which our re-encoded frames must respect.
/// </param>
internal sealed class AuthorityRewriteMiddleware(Http2Limits limits, ILogger logger)
{
    // Same as Kestrel's default MaxRequestBufferSize: the pump stops reading the socket when
    // Kestrel falls this far behind, so flow control works as without us.
    private const long PauseWriterThreshold = 1024 * 1024;

    public async Task OnConnectionAsync(ConnectionContext context, ConnectionDelegate next)
    {
        IDuplexPipe transport = context.Transport;
        MemoryPool<byte>? pool = context.Features.Get<IMemoryPoolFeature>()?.MemoryPool;
        var pipe = new Pipe(new PipeOptions(
            pool: pool,
            readerScheduler: PipeScheduler.ThreadPool,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: PauseWriterThreshold,
            resumeWriterThreshold: PauseWriterThreshold / 2,
            useSynchronizationContext: false));

        context.Transport = new DuplexPipe(pipe.Reader, transport.Output);
        Task pump = PumpAsync(context, transport.Input, pipe.Writer);
        try
        {
            await next(context);
        }
        finally
        {
            // Kestrel is done with the connection: stop the pump wherever it waits.
            pipe.Reader.Complete();
            transport.Input.CancelPendingRead();
            await pump;
            context.Transport = transport;
        }
    }

    private async Task PumpAsync(ConnectionContext context, PipeReader input, PipeWriter output)
    {
        // Never throws: whatever goes wrong ends up as the completion of Kestrel's input pipe.
        Exception? error = null;
        Http2FrameRewriter? rewriter = null;
        try
        {
            rewriter = new Http2FrameRewriter(limits.HeaderTableSize, limits.MaxFrameSize);
            while (true)
            {
                ReadResult result = await input.ReadAsync();
                if (result.IsCanceled)
                {
                    break;
                }
                ReadOnlySequence<byte> buffer = result.Buffer;
                SequencePosition consumed;
                try
                {
                    consumed = rewriter.Process(buffer, output);
                }
                catch (Exception ex)
                {
                    // Malformed header blocks (or, for any other exception, a bug of ours): the server
                    // would answer them with a connection error (RFC 7540 Section 5.4.1), and we can no
                    // longer follow the client's HPACK context. Drop the connection; Kestrel then sees
                    // its input aborted, as for a client that vanished.
                    if (ex is HpackDecodingException or Http2RewriteException)
                    {
                        logger.LogInformation("Connection {ConnectionId}: malformed HTTP/2 from the client, closing it: {Reason}", context.ConnectionId, ex.Message);
                    }
                    else
                    {
                        logger.LogError(ex, "Connection {ConnectionId}: :authority rewrite failed, closing the connection", context.ConnectionId);
                    }
                    input.AdvanceTo(buffer.End);
                    var aborted = new ConnectionAbortedException("HTTP/2 header block rewrite failed: " + ex.Message, ex);
                    error = aborted;
                    context.Abort(aborted);
                    break;
                }
                input.AdvanceTo(consumed, buffer.End);

                FlushResult flush = await output.FlushAsync();
                if (flush.IsCompleted || flush.IsCanceled || result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex)
        {
            // A transport failure (reset, abort): hand it to Kestrel as its own transport would.
            error = ex;
        }
        finally
        {
            rewriter?.Dispose();
            await output.CompleteAsync(error);
            await input.CompleteAsync();
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
