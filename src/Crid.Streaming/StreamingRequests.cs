using Crid.Core.Errors;
using Runtime.V1;

namespace Crid.Streaming;

/// <summary>What a streaming URL stands for, checked and kept until its token is used.</summary>
public abstract record StreamingRequest
{
    /// <summary>The URL's first path segment: exec, attach or portforward.</summary>
    public abstract string Kind { get; }

    /// <summary>The container or sandbox, for the log.</summary>
    public abstract string Target { get; }
}

public sealed record ExecStreamRequest(string ContainerId, IReadOnlyList<string> Command, bool Stdin, bool Stdout, bool Stderr, bool Tty)
    : StreamingRequest
{
    public override string Kind => "exec";

    public override string Target => ContainerId;
}

public sealed record AttachStreamRequest(string ContainerId, bool Stdin, bool Stdout, bool Stderr, bool Tty) : StreamingRequest
{
    public override string Kind => "attach";

    public override string Target => ContainerId;
}

/// <summary>Port-forward into a sandbox; which ports is the client's choice per connection, as with kubelet.</summary>
public sealed record PortForwardStreamRequest(string SandboxId) : StreamingRequest
{
    public override string Kind => "portforward";

    public override string Target => SandboxId;
}

/// <summary>The CRI's rules for Exec, Attach and PortForward requests; each failure names its field.</summary>
public static class StreamingRequestValidator
{
    public static ExecStreamRequest Exec(ExecRequest request)
    {
        RequireId(request.ContainerId, "container_id");
        if (request.Cmd.Count == 0)
            throw new InvalidArgumentException("cmd", "a command is required");
        for (int i = 0; i < request.Cmd.Count; i++)
        {
            if (request.Cmd[i].Contains('\0'))
                throw new InvalidArgumentException($"cmd[{i}]", "must not contain NUL");
        }
        CheckStreams(request.Stdin, request.Stdout, request.Stderr, request.Tty);
        return new ExecStreamRequest(request.ContainerId, request.Cmd.ToArray(), request.Stdin, request.Stdout, request.Stderr, request.Tty);
    }

    public static AttachStreamRequest Attach(AttachRequest request)
    {
        RequireId(request.ContainerId, "container_id");
        CheckStreams(request.Stdin, request.Stdout, request.Stderr, request.Tty);
        return new AttachStreamRequest(request.ContainerId, request.Stdin, request.Stdout, request.Stderr, request.Tty);
    }

    /// <summary>Checks the fields; the sandbox itself is the caller's to look up.</summary>
    public static void PortForward(PortForwardRequest request)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        for (int i = 0; i < request.Port.Count; i++)
        {
            if (request.Port[i] is < 1 or > 65535)
                throw new InvalidArgumentException($"port[{i}]", $"{request.Port[i]} is not a TCP port (1-65535)");
        }
    }

    private static void RequireId(string id, string field)
    {
        if (string.IsNullOrEmpty(id))
            throw new InvalidArgumentException(field, "required");
        if (id.Length > 256 || id.Any(char.IsControl))
            throw new InvalidArgumentException(field, "not a valid id");
    }

    private static void CheckStreams(bool stdin, bool stdout, bool stderr, bool tty)
    {
        // api.proto: "If tty is true, stderr MUST be false. Multiplexing is not supported in this case."
        if (tty && stderr)
            throw new InvalidArgumentException("stderr", "must be false with tty: a terminal merges stderr into stdout");
        if (!stdin && !stdout && !stderr)
            throw new InvalidArgumentException("stdin", "one of stdin, stdout or stderr must be set");
    }
}
