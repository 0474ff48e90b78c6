namespace Crid.Core.Errors;

/// <summary>
/// Domain failures that the server's interceptor maps to gRPC status codes in one place,
/// so services stay thin and never build RpcExceptions themselves.
/// </summary>
public abstract class CriException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A request field is missing or malformed; the message starts with the field's path.</summary>
public sealed class InvalidArgumentException(string field, string problem)
    : CriException($"{field}: {problem}")
{
    public string Field { get; } = field;
}

public sealed class NotFoundException(string message) : CriException(message);

public sealed class AlreadyExistsException(string message) : CriException(message);

public sealed class FailedPreconditionException(string message, Exception? inner = null) : CriException(message, inner);

/// <summary>A bounded resource is used up for now (gRPC ResourceExhausted); the caller may retry later.</summary>
public sealed class ResourceExhaustedException(string message) : CriException(message);

/// <summary>The host refused something the request was entitled to ask for (a mount, a write).</summary>
public sealed class RuntimeFailureException(string message, Exception? inner = null) : CriException(message, inner);

/// <summary>The operation ran out of its time (an ExecSync timeout), as gRPC DeadlineExceeded reports it.</summary>
public sealed class DeadlineExceededException(string message) : CriException(message);
