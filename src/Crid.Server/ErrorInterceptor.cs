using System.Diagnostics;
using Crid.Core.Errors;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;

namespace Crid.Server;

/// <summary>
/// The one place where exceptions become gRPC statuses: domain errors keep their message,
/// anything unexpected becomes Internal without leaking internals to the client (the log keeps them).
/// It also writes the one debug line per call.
/// </summary>
internal sealed class ErrorInterceptor(ILogger<ErrorInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var response = await continuation(request, context).ConfigureAwait(false);
            if (logger.IsEnabled(LogLevel.Debug))
                ServerLog.CallCompleted(logger, context.Method, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return response;
        }
        catch (Exception e)
        {
            var status = ToStatus(e);
            if (status.StatusCode == StatusCode.Internal)
                ServerLog.CallCrashed(logger, e, context.Method);
            else if (logger.IsEnabled(LogLevel.Debug))
                ServerLog.CallFailed(logger, context.Method, status.StatusCode.ToString(), status.Detail, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            throw new RpcException(status);
        }
    }

    internal static Status ToStatus(Exception e) => e switch
    {
        RpcException rpc => rpc.Status,
        InvalidArgumentException => new Status(StatusCode.InvalidArgument, e.Message),
        NotFoundException => new Status(StatusCode.NotFound, e.Message),
        AlreadyExistsException => new Status(StatusCode.AlreadyExists, e.Message),
        FailedPreconditionException => new Status(StatusCode.FailedPrecondition, e.Message),
        ResourceExhaustedException => new Status(StatusCode.ResourceExhausted, e.Message),
        RuntimeFailureException => new Status(StatusCode.Unknown, e.Message),
        OperationCanceledException => new Status(StatusCode.Cancelled, "the call was cancelled"),
        _ => new Status(StatusCode.Internal, "internal error in crid; the daemon's log has the details"),
    };
}
