using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Crid.Core.Containers;
using Crid.Core.Errors;
using Crid.Linux;

namespace Crid.Runtime;

/// <remarks>
/// Exec goes to runc directly (<c>runc exec</c> in the foreground), not through
/// <c>conmon --exec</c>: measured here, a <c>true</c> costs 19 ms through runc and 22 ms through
/// conmon (which adds a fork, a log file in the CRI format to write and parse back, and a temp
/// file), and stdout/stderr arrive apart on two sockets without parsing. What conmon would add,
/// the timeout that kills the process group and the output cap, is done here.
/// </remarks>
public sealed partial class ConmonRuntime
{
    public async Task<ExecSyncResult> ExecSyncAsync(ExecSyncRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckId(request.Id);
        CheckCommand(request.Command);
        if (request.Timeout < TimeSpan.Zero)
        {
            throw new InvalidArgumentException("timeout", "must not be negative");
        }

        using var exec = PrepareExec(request.Id, request.Command, tty: false);
        var (outOurs, outTheirs) = SocketPair.Create();
        var (errOurs, errTheirs) = SocketPair.Create();
        ChildProcess runc;
        using (outTheirs)
        using (errTheirs)
        {
            try
            {
                runc = exec.Start(new Dictionary<int, SafeHandle> { [1] = outTheirs, [2] = errTheirs }, null);
            }
            catch
            {
                outOurs.Dispose();
                errOurs.Dispose();
                throw;
            }
        }

        var budget = new OutputBudget(request.OutputLimit);
        using var readers = new CancellationTokenSource();
        var stdout = OutputCapture.CollectAsync(outOurs, budget, readers.Token);
        var stderr = OutputCapture.CollectAsync(errOurs, budget, readers.Token);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (request.Timeout > TimeSpan.Zero)
        {
            deadline.CancelAfter(request.Timeout);
        }

        bool timedOut = false;
        ProcessExit exit;
        try
        {
            exit = await runc.Exited.WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            timedOut = !cancellationToken.IsCancellationRequested;
            if (timedOut)
            {
                RuntimeLog.ExecTimedOut(_logger, request.Id, request.Timeout.TotalSeconds);
            }

            exit = await exec.KillAsync(runc).ConfigureAwait(false);
        }

        // runc waits for its copies of the command's output; once it is gone, whatever else holds
        // our sockets (nothing, normally) is not waited for.
        readers.CancelAfter(TimeSpan.FromSeconds(1));
        byte[] output = await stdout.ConfigureAwait(false);
        byte[] errors = await stderr.ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        if (!timedOut && !exec.Started)
        {
            throw exec.Failure(exit);
        }

        return new ExecSyncResult
        {
            ExitCode = timedOut ? -1 : exit.Code,
            Stdout = output,
            Stderr = errors,
            TimedOut = timedOut,
            Truncated = budget.Truncated,
        };
    }

    public async Task<IExecSession> ExecAsync(ExecRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckId(request.Id);
        CheckCommand(request.Command);
        var exec = PrepareExec(request.Id, request.Command, request.Tty);
        try
        {
            var session = request.Tty ? StartTtyExec(exec, request) : StartPipeExec(exec, request);

            // runc writes the pid file once the command runs; until then a failure is runc's own.
            while (!exec.Started && !session.Runc.Exited.IsCompleted)
            {
                await Task.WhenAny(session.Runc.Exited, Task.Delay(5, cancellationToken)).ConfigureAwait(false);
                if (cancellationToken.IsCancellationRequested)
                {
                    await session.DisposeAsync().ConfigureAwait(false);
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }

            if (!exec.Started)
            {
                var failure = exec.Failure(await session.Runc.Exited.ConfigureAwait(false));
                await session.DisposeAsync().ConfigureAwait(false);
                throw failure;
            }

            return session;
        }
        catch
        {
            exec.Dispose();
            throw;
        }
    }

    private static ExecSession StartPipeExec(ExecFiles exec, ExecRequest request)
    {
        var ours = new List<System.Net.Sockets.Socket>();
        var fds = new Dictionary<int, SafeHandle>();
        System.Net.Sockets.Socket? Pair(int fd, bool wanted)
        {
            if (!wanted)
            {
                return null;
            }

            var (mine, theirs) = SocketPair.Create();
            ours.Add(mine);
            fds[fd] = theirs;
            return mine;
        }

        try
        {
            var stdin = Pair(0, request.Stdin);
            var stdout = Pair(1, request.Stdout);
            var stderr = Pair(2, request.Stderr);
            var runc = exec.Start(fds, null);
            return new ExecSession(exec, runc, null,
                stdin is null ? null : new System.Net.Sockets.NetworkStream(stdin, ownsSocket: true),
                stdout is null ? null : new System.Net.Sockets.NetworkStream(stdout, ownsSocket: true),
                stderr is null ? null : new System.Net.Sockets.NetworkStream(stderr, ownsSocket: true));
        }
        catch
        {
            foreach (var s in ours)
            {
                s.Dispose();
            }

            throw;
        }
        finally
        {
            foreach (var h in fds.Values)
            {
                h.Dispose();
            }
        }
    }

    /// <summary>
    /// runc exec --tty in the foreground needs a terminal of its own to relay (it refuses a console
    /// socket unless detached, and a detached command's exit code would go to its new parent, init):
    /// as cri-o's ttyCmd does, runc gets a pty slave as its controlling terminal and the session
    /// keeps the master. Resizing the master sends runc SIGWINCH; runc resizes the container's pty.
    /// </summary>
    private static ExecSession StartTtyExec(ExecFiles exec, ExecRequest request)
    {
        var pty = Pty.Open(request.InitialSize.Rows, request.InitialSize.Columns);
        try
        {
            var (output, input) = pty.OpenStreams();
            var runc = exec.Start(new Dictionary<int, SafeHandle>(), pty.SlavePath);
            return new ExecSession(exec, runc, pty, request.Stdin ? input : DisposeAndNull(input), request.Stdout ? output : DisposeAndNull(output), null);
        }
        catch
        {
            pty.Dispose();
            throw;
        }
    }

    private static Stream? DisposeAndNull(Stream s)
    {
        s.Dispose();
        return null;
    }

    private static void CheckCommand(IReadOnlyList<string> command)
    {
        if (command is null || command.Count == 0 || command[0].Length == 0)
        {
            throw new InvalidArgumentException("cmd", "the command is empty");
        }

        if (command.Any(a => a.Contains('\0')))
        {
            throw new InvalidArgumentException("cmd", "an argument contains a NUL byte");
        }
    }

    /// <summary>The container's own process spec (user, env, cwd, capabilities) with the command's argv, written for runc exec --process.</summary>
    private ExecFiles PrepareExec(string id, IReadOnlyList<string> command, bool tty)
    {
        var files = Files(id);
        string bundle = files.Bundle ?? throw new NotFoundException($"container {id} not found");
        JsonObject process;
        try
        {
            var config = JsonNode.Parse(File.ReadAllBytes(Path.Combine(bundle, "config.json")));
            process = (config?["process"] as JsonObject)?.DeepClone() as JsonObject
                ?? throw new FailedPreconditionException($"container {id}: its config.json has no process");
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            throw new FailedPreconditionException($"container {id}: its config.json cannot be read: {e.Message}", e);
        }

        var args = new JsonArray();
        foreach (var a in command)
        {
            args.Add((JsonNode)JsonValue.Create(a));
        }

        process["args"] = args;
        process["terminal"] = tty;
        process.Remove("consoleSize");
        var exec = new ExecFiles(_options, files);
        using (var stream = new FileStream(exec.SpecPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096))
        using (var writer = new Utf8JsonWriter(stream))
        {
            process.WriteTo(writer);
        }

        return exec;
    }

    /// <summary>One exec's files in the container's folder and the runc command that uses them.</summary>
    private sealed class ExecFiles : IDisposable
    {
        private readonly RuntimeOptions _options;
        private readonly ContainerFiles _files;

        public ExecFiles(RuntimeOptions options, ContainerFiles files)
        {
            _options = options;
            _files = files;
            string token = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
            string stem = Path.Combine(files.PersistDir, "exec-" + token);
            SpecPath = stem + ".json";
            PidPath = stem + ".pid";
            LogPath = stem + ".log";
        }

        public string SpecPath { get; }

        public string PidPath { get; }

        public string LogPath { get; }

        /// <summary>runc wrote the command's pid: the command ran, and an exit code is its own.</summary>
        public bool Started => File.Exists(PidPath);

        public ChildProcess Start(IReadOnlyDictionary<int, SafeHandle> fds, string? terminal)
        {
            // runc's own messages go to a file of their own (JSON), so the command's stderr is only
            // the command's, and a failure of runc can be told from the command's exit code.
            var args = new List<string>
            {
                _options.RuntimePath, "--root", _options.RuntimeRoot, "--log", LogPath, "--log-format", "json",
                "exec", "--process", SpecPath, "--pid-file", PidPath,
            };
            if (terminal is not null)
            {
                args.Add("--tty");
            }

            args.Add(_files.Id);
            return ChildProcess.Start(new SpawnOptions
            {
                Executable = _options.RuntimePath,
                Args = args,
                Environment = _options.MonitorEnvironment,
                Fds = fds,
                ControllingTerminal = terminal,
                NewProcessGroup = true,
            });
        }

        /// <summary>
        /// Ends the command as conmon ends a timed-out one: SIGKILL to its process group (runc exec
        /// makes it a session leader), which takes what it started too; runc then exits. runc
        /// itself is killed if it never started the command or does not exit.
        /// </summary>
        public async Task<ProcessExit> KillAsync(ChildProcess runc)
        {
            int pid = ContainerFiles.ReadPid(PidPath);
            if (pid > 0 && !runc.Exited.IsCompleted)
            {
                ChildProcess.SignalGroupOf(pid, Signals.SIGKILL);
            }
            else
            {
                runc.Signal(Signals.SIGKILL);
            }

            try
            {
                return await runc.Exited.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                runc.Signal(Signals.SIGKILL);
                return await runc.Exited.ConfigureAwait(false);
            }
        }

        /// <summary>Why runc failed before the command ran, from its log.</summary>
        public Exception Failure(ProcessExit exit)
        {
            string message = "";
            try
            {
                foreach (var line in File.ReadLines(LogPath))
                {
                    try
                    {
                        using var doc = JsonDocument.Parse(line);
                        if (doc.RootElement.TryGetProperty("level", out var level) && level.GetString() is "error" or "fatal" &&
                            doc.RootElement.TryGetProperty("msg", out var msg))
                        {
                            message = msg.GetString() ?? "";
                        }
                    }
                    catch (JsonException)
                    {
                        message = line;
                    }
                }
            }
            catch (IOException)
            {
            }

            if (RuncClient.IsNotFound(message))
            {
                return new NotFoundException($"container {_files.Id} not found by the runtime: {message}");
            }

            if (RuncClient.IsNotRunning(message) || message.Contains("cannot exec", StringComparison.Ordinal))
            {
                return new FailedPreconditionException($"container {_files.Id} is not running: {message}");
            }

            return new RuntimeFailureException($"exec in container {_files.Id} failed ({exit}): {(message.Length > 0 ? message : "runc gave no reason")}");
        }

        public void Dispose()
        {
            File.Delete(SpecPath);
            File.Delete(PidPath);
            File.Delete(LogPath);
        }
    }

    /// <summary>A running interactive exec: its streams, its exit, its terminal.</summary>
    private sealed class ExecSession : IExecSession
    {
        private readonly ExecFiles _exec;
        private readonly Pty? _pty;
        private int _disposed;

        public ExecSession(ExecFiles exec, ChildProcess runc, Pty? pty, Stream? stdin, Stream? stdout, Stream? stderr)
        {
            _exec = exec;
            Runc = runc;
            _pty = pty;
            Stdin = stdin;
            Stdout = stdout;
            Stderr = stderr;
            Exited = ExitCodeAsync(runc);
        }

        public ChildProcess Runc { get; }

        public Stream? Stdin { get; }

        public Stream? Stdout { get; }

        public Stream? Stderr { get; }

        public Task<int> Exited { get; }

        public void Resize(ushort rows, ushort columns) => _pty?.Resize(rows, columns);

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            if (!Runc.Exited.IsCompleted)
            {
                await _exec.KillAsync(Runc).ConfigureAwait(false);
            }

            Stdin?.Dispose();
            Stdout?.Dispose();
            Stderr?.Dispose();
            _pty?.Dispose();
            _exec.Dispose();
        }

        private static async Task<int> ExitCodeAsync(ChildProcess runc) => (await runc.Exited.ConfigureAwait(false)).Code;
    }
}
