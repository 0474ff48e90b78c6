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

    /// <summary>
    /// Starts a created container: what <c>runc start</c> does, done here when the runtime is runc
    /// (see <see cref="TryStartThroughFifoAsync"/>), else (or when runc must say why not) by
    /// <c>runc start</c> itself.
    /// </summary>
    /// <param name="initPid">The container's init (conmon's pid file); 0 when unknown.</param>
    public async Task StartAsync(string id, int initPid, CancellationToken cancellationToken)
    {
        if (StartsThroughFifo && initPid > 0 && await TryStartThroughFifoAsync(id, initPid, cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        var r = await RunAsync(["start", id], cancellationToken).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            throw Failure("start", id, r);
        }
    }

    /// <summary>Whether starts read runc's exec fifo here: only for runc itself (crun's fifo works the other way round).</summary>
    public bool StartsThroughFifo => System.IO.Path.GetFileName(options.RuntimePath) == "runc";

    /// <summary>
    /// <c>runc start</c> without the runc process (an exec of a 10 MB Go binary that loads the
    /// container's state and cgroup manager first: about 6 ms here, more on a busy machine). runc's
    /// own protocol (libcontainer's exec()): after <c>runc create</c> the container's init,
    /// <c>runc:[2:INIT]</c>, blocks opening <c>&lt;root&gt;/&lt;id&gt;/exec.fifo</c> for writing;
    /// a reader lets it write one byte and exec the process, whose exec closes the fifo; the
    /// reader reads to that end, then removes the fifo, which is how <c>runc state</c> tells
    /// "running" from "created". Returns false where runc should answer instead: no fifo (not
    /// created, started already, or another runtime's layout), or an init that is gone or not
    /// this container's. Hooks: crid's specs carry none. runc 1.1 (Debian's) runs poststart hooks
    /// in <c>runc create</c>, later runc versions in <c>runc start</c>, so a spec that ever gains
    /// poststart hooks must be started by <c>runc start</c>.
    /// </summary>
    private async Task<bool> TryStartThroughFifoAsync(string id, int pid, CancellationToken cancellationToken)
    {
        // Looked at before the fifo is opened: the reader is what lets the init go on.
        string path = System.IO.Path.Combine(options.RuntimeRoot, id, ExecFifoName);
        string? comm = ReadComm(pid);
        if (comm != InitName)
        {
            // The init ran its process already while the fifo is still there: a start whose reader
            // (this daemon) was killed between the init's byte and the fifo's removal. Only the
            // removal is left to do; runc start would wait for the byte forever.
            if (comm is not null && File.Exists(path) && IsInitOf(id, pid))
            {
                File.Delete(path);
                return true;
            }

            return false;
        }

        using var fifo = FifoReader.Open(path);
        if (fifo is null)
        {
            return false;
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.CommandTimeout);
        var read = fifo.ReadToEndAsync(16, deadline.Token);
        var gone = ChildProcess.WaitForExitAsync(pid, deadline.Token);
        try
        {
            if (await Task.WhenAny(read, gone).ConfigureAwait(false) == gone && !read.IsCompleted)
            {
                // A process that exits at once may be reported gone before its byte and hang-up,
                // which are in the fifo already: a moment for the poller, then it never came.
                try
                {
                    await read.WaitAsync(TimeSpan.FromMilliseconds(200), CancellationToken.None).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    throw new FailedPreconditionException($"container {id} cannot be started: its init process is already dead");
                }
            }

            byte[] bytes = await read.ConfigureAwait(false);
            if (bytes.Length == 0)
            {
                throw new FailedPreconditionException($"container {id} cannot be started: it is running already");
            }

            File.Delete(path);
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RuntimeFailureException($"container {id}: its init did not take the start within {options.CommandTimeout.TotalSeconds:F0} s");
        }
        finally
        {
            deadline.Cancel();
            await Task.WhenAll(read, gone).ContinueWith(static _ => { }, TaskScheduler.Default).ConfigureAwait(false);
        }
    }

    /// <summary>runc's name for its container init while it waits for the start (nsexec's stage 2).</summary>
    private const string InitName = "runc:[2:INIT]";

    private const string ExecFifoName = "exec.fifo";

    private static string? ReadComm(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Whether <paramref name="pid"/> is the init runc recorded for <paramref name="id"/> (pid and start time, as runc checks it).</summary>
    private bool IsInitOf(string id, int pid) => ReadInit(id) is { } init && init.Pid == pid && init.Alive;

    /// <summary>
    /// <c>runc state</c>'s answer for a container whose init is alive, worked out as runc itself
    /// does (libcontainer's runType) without exec'ing it: state.json's init pid and start time
    /// against /proc (not a zombie), then "created" while exec.fifo exists, else "running". Null
    /// where runc must answer: no readable state, an init that is gone (stopped, with an exit to
    /// read), or a frozen cgroup (paused). Every state read asks this first; at recovery an exec
    /// of runc per container cost minutes with 1,000 under load.
    /// </summary>
    public RuncState? TryReadLiveState(string id)
    {
        if (ReadInit(id) is not { Alive: true } init || init.Frozen)
        {
            return null;
        }

        string status = File.Exists(System.IO.Path.Combine(options.RuntimeRoot, id, ExecFifoName)) ? "created" : "running";
        return new RuncState(id, init.Pid, status, "");
    }

    /// <summary>The init runc recorded for <paramref name="id"/>; null without a readable state.json.</summary>
    private (int Pid, bool Alive, bool Frozen)? ReadInit(string id)
    {
        try
        {
            string path = System.IO.Path.Combine(options.RuntimeRoot, id, "state.json");
            if (ReadInitFields(path) is not ({ } pid and > 0, { } start))
            {
                return null;
            }

            // /proc/<pid>/stat: the state is field 3 and the start time field 22; the name before
            // them may hold spaces and parentheses.
            string stat;
            try
            {
                stat = File.ReadAllText($"/proc/{pid}/stat");
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                return (pid, false, false);
            }

            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            bool alive = fields.Length > 19 && fields[0] is not ("Z" or "X") && ulong.TryParse(fields[19], out ulong started) && started == start;

            // Under the v1 freezer a frozen task sleeps uninterruptibly ("D"): only then is the
            // freezer read (its read takes a global mutex and walks the cgroup's descendants), from
            // the whole state.json. cgroup v2's freezer parks tasks in an interruptible sleep ("S"),
            // so without a v1 freezer hierarchy cgroup.freeze (a cheap read) is always asked.
            return (pid, alive, alive && (fields[0] == "D" || !HasV1Freezer.Value) && IsFrozen(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    /// <summary>Whether the host mounts a cgroup v1 freezer hierarchy (v1 or hybrid): then runc pauses through it.</summary>
    private static readonly Lazy<bool> HasV1Freezer = new(() => File.Exists("/sys/fs/cgroup/freezer/tasks"));

    /// <summary>
    /// init_process_pid and init_process_start of a runc state.json (null where absent). runc writes
    /// them right after the id, before the container's whole config (8 to 9 KB here): the file's
    /// first kilobyte is read and scanned, and the rest only when they are not in it.
    /// </summary>
    private static (int? Pid, ulong? Start) ReadInitFields(string path)
    {
        const int Head = 1024;
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Head);
        try
        {
            int n;
            using (var handle = File.OpenHandle(path))
            {
                n = RandomAccess.Read(handle, buffer.AsSpan(0, Head), 0);
            }

            var fields = ScanInitFields(buffer.AsSpan(0, n), final: n < Head, out bool complete);
            return complete || n < Head ? fields : ScanInitFields(File.ReadAllBytes(path), final: true, out _);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The two fields among the top-level properties of <paramref name="json"/>; <paramref name="complete"/> once both are found.</summary>
    private static (int? Pid, ulong? Start) ScanInitFields(ReadOnlySpan<byte> json, bool final, out bool complete)
    {
        var reader = new Utf8JsonReader(json, isFinalBlock: final, state: default);
        int? pid = null;
        ulong? start = null;
        complete = false;
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("state.json is not an object");
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isPid = reader.ValueTextEquals("init_process_pid"u8);
            bool isStart = !isPid && reader.ValueTextEquals("init_process_start"u8);
            if (!reader.Read())
            {
                break;
            }

            if (isPid && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out int p))
            {
                pid = p;
            }
            else if (isStart && reader.TokenType == JsonTokenType.Number && reader.TryGetUInt64(out ulong t))
            {
                start = t;
            }
            else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray && !reader.TrySkip())
            {
                break;
            }

            if (pid is not null && start is not null)
            {
                complete = true;
                break;
            }
        }

        return (pid, start);
    }

    /// <summary>runc's paused: the v1 freezer's state, or cgroup v2's cgroup.freeze, from the paths in state.json.</summary>
    private static bool IsFrozen(string statePath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(statePath));
        if (!doc.RootElement.TryGetProperty("cgroup_paths", out var paths) || paths.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        if (paths.TryGetProperty("freezer", out var freezer) && freezer.GetString() is { Length: > 0 } v1)
        {
            return ReadTrimmed(System.IO.Path.Combine(v1, "freezer.state")) is { } frozen && frozen != "THAWED";
        }

        return paths.TryGetProperty("", out var unified) && unified.GetString() is { Length: > 0 } v2
            && ReadTrimmed(System.IO.Path.Combine(v2, "cgroup.freeze")) == "1";
    }

    private static string? ReadTrimmed(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
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
