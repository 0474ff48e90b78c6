using System.Collections.Concurrent;
using System.Diagnostics;
using Crid.Core.Errors;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;

namespace Crid.Server;

/// <summary>
/// The one place where exceptions become gRPC statuses, for unary and streaming calls alike: domain
/// errors keep their message, anything unexpected becomes Internal without leaking internals to the
/// client (the log keeps them, with the stack). It also writes the log: one line per call at debug,
/// one line naming the method for an expected failure (no stack trace), and an Unimplemented
/// method once at warning, then at debug (kubelet polls some of them every few seconds).
/// </summary>
internal sealed class ErrorInterceptor(ILogger<ErrorInterceptor> logger) : Interceptor
{
    // Static: grpc-dotnet activates an interceptor per call.
    private static readonly ConcurrentDictionary<string, bool> UnimplementedSeen = new(StringComparer.Ordinal);

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var response = await continuation(request, context).ConfigureAwait(false);
            Completed(context, started);
            return response;
        }
        catch (Exception e)
        {
            throw Failed(e, context, started);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
            Completed(context, started);
        }
        catch (Exception e)
        {
            throw Failed(e, context, started);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var response = await continuation(requestStream, context).ConfigureAwait(false);
            Completed(context, started);
            return response;
        }
        catch (Exception e)
        {
            throw Failed(e, context, started);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
            Completed(context, started);
        }
        catch (Exception e)
        {
            throw Failed(e, context, started);
        }
    }

    private void Completed(ServerCallContext context, long started)
    {
        if (logger.IsEnabled(LogLevel.Debug))
            ServerLog.CallCompleted(logger, context.Method, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private RpcException Failed(Exception e, ServerCallContext context, long started)
    {
        var status = ToStatus(e);
        var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        switch (status.StatusCode)
        {
            case StatusCode.Internal:
                ServerLog.CallCrashed(logger, e, context.Method);
                break;
            case StatusCode.Unimplemented when UnimplementedSeen.TryAdd(context.Method, true):
                ServerLog.CallUnimplemented(logger, context.Method, status.Detail);
                break;
            case StatusCode.Unimplemented or StatusCode.Cancelled or StatusCode.DeadlineExceeded:
                ServerLog.CallFailed(logger, context.Method, status.StatusCode.ToString(), status.Detail, ms);
                break;
            case StatusCode.NotFound:
                ServerLog.CallNotFound(logger, context.Method, status.Detail, ms);
                break;
            default:
                ServerLog.CallRefused(logger, context.Method, status.StatusCode.ToString(), status.Detail, ms);
                break;
        }
        return e as RpcException is { } rpc && rpc.Status.Equals(status) ? rpc : new RpcException(status);
    }

    internal static Status ToStatus(Exception e) => e switch
    {
        RpcException rpc => rpc.Status,
        InvalidArgumentException => new Status(StatusCode.InvalidArgument, e.Message),
        NotFoundException => new Status(StatusCode.NotFound, e.Message),
        AlreadyExistsException => new Status(StatusCode.AlreadyExists, e.Message),
        FailedPreconditionException => new Status(StatusCode.FailedPrecondition, e.Message),
        DeadlineExceededException => new Status(StatusCode.DeadlineExceeded, e.Message),
        ResourceExhaustedException => new Status(StatusCode.ResourceExhausted, e.Message),
        RuntimeFailureException => new Status(StatusCode.Unknown, e.Message),
        OperationCanceledException => new Status(StatusCode.Cancelled, "the call was cancelled"),
        _ => new Status(StatusCode.Internal, "internal error in crid; the daemon's log has the details"),
    };
}
