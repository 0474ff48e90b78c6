using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Crid.Core.Containers;
using Crid.Core.Errors;
using Crid.Linux;

namespace Crid.Runtime;

/// <summary>What a runtime command printed and how it ended.</summary>
internal sealed record CommandResult(ProcessExit Exit, string Stdout, string Stderr)
{
    public bool Succeeded => Exit.Signal == 0 && Exit.ExitCode == 0;

    /// <summary>runc's own message (logrus' msg="..."), else its stderr as it is.</summary>
    public string Message => RuncClient.MessageOf(Stderr);
}

/// <summary>What <c>runc state</c> says of a container.</summary>
internal sealed record RuncState(string Id, int Pid, string Status, string Bundle);

/// <summary>
/// The OCI runtime's command line: <c>runc --root &lt;root&gt; ...</c>, run as a child of the
/// daemon with its output captured, never blocking a pool thread.
/// </summary>
internal sealed partial class RuncClient(RuntimeOptions options)
{
    private const int OutputLimit = 1024 * 1024;

    public string Path => options.RuntimePath;

    /// <summary>The global arguments every call starts with.</summary>
    public IReadOnlyList<string> GlobalArgs { get; } = ["--root", options.RuntimeRoot];

    public async Task StartAsync(string id, CancellationToken cancellationToken)
    {
        var r = await RunAsync(["start", id], cancellationToken).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            throw Failure("start", id, r);
        }
    }

    /// <summary><c>runc kill</c>; false when the container is no longer running (nothing to signal).</summary>
    public async Task<bool> KillAsync(string id, int signal, bool all, CancellationToken cancellationToken)
    {
        string[] args = all ? ["kill", "--all", id, signal.ToString(System.Globalization.CultureInfo.InvariantCulture)] : ["kill", id, signal.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        var r = await RunAsync(args, cancellationToken).ConfigureAwait(false);
        if (r.Succeeded)
        {
            return true;
        }

        if (IsNotRunning(r.Message))
        {
            return false;
        }

        throw Failure("kill", id, r);
    }

    /// <summary><c>runc delete --force</c>: kills a running container; an unknown one is fine.</summary>
    public async Task DeleteAsync(string id, CancellationToken cancellationToken)
    {
        var r = await RunAsync(["delete", "--force", id], cancellationToken).ConfigureAwait(false);
        if (!r.Succeeded && !IsNotFound(r.Message))
        {
            throw Failure("delete", id, r);
        }
    }

    /// <summary><c>runc state</c>; null when runc does not know the container.</summary>
    public async Task<RuncState?> StateAsync(string id, CancellationToken cancellationToken)
    {
        var r = await RunAsync(["state", id], cancellationToken).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            if (IsNotFound(r.Message))
            {
                return null;
            }

            throw Failure("state", id, r);
        }

        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        return new RuncState(
            root.GetProperty("id").GetString() ?? id,
            root.TryGetProperty("pid", out var pid) ? pid.GetInt32() : 0,
            root.GetProperty("status").GetString() ?? "",
            root.TryGetProperty("bundle", out var bundle) ? bundle.GetString() ?? "" : "");
    }

    public static ContainerRuntimeStatus StatusOf(string runcStatus) => runcStatus switch
    {
        "created" or "creating" => ContainerRuntimeStatus.Created,
        "running" => ContainerRuntimeStatus.Running,
        "paused" or "pausing" => ContainerRuntimeStatus.Paused,
        _ => ContainerRuntimeStatus.Stopped,
    };

    /// <summary>Runs <c>runc --root R &lt;args&gt;</c> to its end; killed when the command timeout or the token fires.</summary>
    public async Task<CommandResult> RunAsync(IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        var (outOurs, outTheirs) = SocketPair.Create();
        var (errOurs, errTheirs) = SocketPair.Create();
        ChildProcess child;
        using (outTheirs)
        using (errTheirs)
        {
            try
            {
                child = ChildProcess.Start(new SpawnOptions
                {
                    Executable = options.RuntimePath,
                    Args = [options.RuntimePath, .. GlobalArgs, .. args],
                    Environment = options.MonitorEnvironment,
                    Fds = new Dictionary<int, System.Runtime.InteropServices.SafeHandle> { [1] = outTheirs, [2] = errTheirs },
                    NewProcessGroup = true,
                });
            }
            catch
            {
                outOurs.Dispose();
                errOurs.Dispose();
                throw;
            }
        }

        var budget = new OutputBudget(OutputLimit);
        using var readers = new CancellationTokenSource();
        var stdout = OutputCapture.CollectAsync(outOurs, budget, readers.Token);
        var stderr = OutputCapture.CollectAsync(errOurs, budget, readers.Token);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.CommandTimeout);
        ProcessExit exit;
        try
        {
            exit = await child.Exited.WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            child.Signal(Signals.SIGKILL);
            await child.Exited.ConfigureAwait(false);
            readers.Cancel();
            await Task.WhenAll(stdout, stderr).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            throw new RuntimeFailureException($"{options.RuntimePath} {string.Join(' ', args)} did not finish in {options.CommandTimeout.TotalSeconds:F0} s: killed");
        }

        // runc is gone; a process it started and that kept its stdio (a detached one) is not ours to wait for.
        readers.CancelAfter(TimeSpan.FromSeconds(1));
        return new CommandResult(exit, Encoding.UTF8.GetString(await stdout.ConfigureAwait(false)), Encoding.UTF8.GetString(await stderr.ConfigureAwait(false)));
    }

    public static bool IsNotFound(string message) => message.Contains("does not exist", StringComparison.Ordinal);

    public static bool IsNotRunning(string message) =>
        message.Contains("not running", StringComparison.Ordinal) || message.Contains("stopped", StringComparison.Ordinal);

    /// <summary>The msg="..." of runc's last logrus line, unescaped; the text as it is otherwise.</summary>
    public static string MessageOf(string stderr)
    {
        var matches = LogrusMessage().Matches(stderr);
        if (matches.Count == 0)
        {
            return stderr.Trim();
        }

        return Regex.Unescape(matches[^1].Groups[1].Value);
    }

    public Exception Failure(string verb, string id, CommandResult r)
    {
        string message = r.Message;
        if (IsNotFound(message))
        {
            return new NotFoundException($"container {id} not found by the runtime: {message}");
        }

        if (verb == "start" && (message.Contains("cannot start", StringComparison.Ordinal) || message.Contains("not in created state", StringComparison.Ordinal)))
        {
            return new FailedPreconditionException($"container {id} cannot be started: {message}");
        }

        return new RuntimeFailureException($"{System.IO.Path.GetFileName(options.RuntimePath)} {verb} {id} failed ({r.Exit}): {message}");
    }

    [GeneratedRegex(@"msg=""((?:[^""\\]|\\.)*)""", RegexOptions.CultureInvariant)]
    private static partial Regex LogrusMessage();
}
