using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Crid.Core.Containers;
using Crid.Core.Errors;
using Crid.Linux;

namespace Crid.Runtime;

public sealed partial class ConmonRuntime
{
    public async Task<CreatedContainer> CreateAsync(CreateContainerRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        long t0 = Stopwatch.GetTimestamp();
        CheckId(request.Id);
        CheckCreate(request);
        cancellationToken.ThrowIfCancellationRequested();
        var files = Files(request.Id);
        if (Directory.Exists(files.PersistDir) || Directory.Exists(files.RuntimeStateDir))
        {
            throw new AlreadyExistsException($"container {request.Id} exists already in the runtime");
        }

        bool logExisted = File.Exists(request.LogPath);
        Directory.CreateDirectory(files.PersistDir, PrivateDir);
        ChildProcess? conmon = null;
        bool bundleFailed = false, released = false;
        try
        {
            // Left by a delete cut short by a crash: conmon would refuse or report a stale exit.
            RemoveStale(files);
            _exits.Forget(request.Id);
            File.CreateSymbolicLink(files.BundleLink, request.BundlePath);
            File.CreateSymbolicLink(files.LogLink, request.LogPath);

            var (syncOurs, syncTheirs) = SocketPair.Create();
            // A daemon that dies before the start byte must not let conmon go on: it reads the end
            // of the pipe as the byte, but exits on a reset (no runc create: what is left is the log
            // file it opened as it started, and this driver's folders, which recovery removes).
            var (startOurs, startTheirs) = SocketPair.CreateResetOnClose();
            var (errOurs, errTheirs) = SocketPair.Create();
            using (syncOurs)
            using (startOurs)
            {
                using (syncTheirs)
                using (startTheirs)
                using (errTheirs)
                {
                    try
                    {
                        conmon = ChildProcess.Start(new SpawnOptions
                        {
                            Executable = _options.ConmonPath,
                            Args = ConmonArgs(request, files),
                            // cri-o: fd 3 is the sync pipe, 4 the start pipe, named by these variables.
                            Environment = [.. _options.MonitorEnvironment, "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"],
                            Fds = new Dictionary<int, SafeHandle> { [1] = errTheirs, [2] = errTheirs, [3] = syncTheirs, [4] = startTheirs },
                            WorkingDirectory = files.PersistDir, // conmon writes its "oom" file in its working folder
                            NewProcessGroup = true,
                        });
                    }
                    catch
                    {
                        errOurs.Dispose();
                        throw;
                    }
                }

                var stderr = OutputCapture.CollectAsync(errOurs, new OutputBudget(64 * 1024), CancellationToken.None);
                double spawned = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;

                // conmon loads, opens the log file and then blocks on the start pipe (before it forks):
                // the caller's bundle work runs meanwhile.
                if (request.BundleReady is { } bundleReady)
                {
                    try
                    {
                        await bundleReady.ConfigureAwait(false);
                        CheckConfig(request);
                    }
                    catch
                    {
                        // Killed while it still waits, and awaited: gone before its files are
                        // (the start pipe's reset alone would also end it, a moment later).
                        bundleFailed = true;
                        conmon.Signal(Signals.SIGKILL);
                        await conmon.Exited.ConfigureAwait(false);
                        throw;
                    }
                }

                Crid.Core.Configuration.TestCrash.At(_options.TestOnlyCrashAt, Crid.Core.Configuration.TestCrash.CreateBeforeStartByte);
                released = true;
                double prepared = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                var (pid, forked) = await HandshakeAsync(request.Id, conmon, startOurs, syncOurs, stderr, cancellationToken).ConfigureAwait(false);
                int monitor = ContainerFiles.ReadPid(files.ConmonPidFile);
                RuntimeLog.Created(_logger, request.Id, pid, monitor, spawned, prepared, Stopwatch.GetElapsedTime(t0, forked).TotalMilliseconds, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                return new CreatedContainer(pid, monitor);
            }
        }
        catch (Exception e)
        {
            // The caller's own failure is the caller's to report.
            if (!bundleFailed)
            {
                RuntimeLog.CreateFailed(_logger, e, request.Id);
            }

            // runc's "already exists" is another container's state: never delete that one. Before
            // the start byte, conmon has not run runc at all.
            await RollbackCreateAsync(files, request, conmon, removeLog: !logExisted, deleteInRuntime: released && e is not AlreadyExistsException).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// cri-o's conversation with conmon: one byte on the start pipe lets it fork (cri-o moves it to
    /// a cgroup first); the first conmon exits once the detached one runs; the detached one runs
    /// <c>runc create</c> and answers on the sync pipe {"pid": N} or {"pid": -1, "message": ...}.
    /// </summary>
    /// <returns>The container's pid, and the timestamp at which the first conmon was seen gone.</returns>
    private async Task<(int Pid, long Forked)> HandshakeAsync(string id, ChildProcess conmon, Socket start, Socket sync, Task<byte[]> stderr, CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(_options.CreateTimeout);
        await start.SendAsync(new byte[] { 0 }, SocketFlags.None, deadline.Token).ConfigureAwait(false);
        var first = await conmon.Exited.WaitAsync(deadline.Token).ConfigureAwait(false);
        long forked = Stopwatch.GetTimestamp();
        if (first.Code != 0)
        {
            string text = Encoding.UTF8.GetString(await stderr.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false)).Trim();
            throw new RuntimeFailureException($"conmon for container {id} failed ({first}): {text}");
        }

        // A caller that gives up mid-create still gets a clean state: runc is left a short while to
        // finish, so the rollback deletes a container runc knows instead of killing it half-made.
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
        using var grace = cancellationToken.Register(() => wait.CancelAfter(TimeSpan.FromSeconds(10)));
        string? line;
        try
        {
            line = await ReadLineAsync(sync, wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RuntimeFailureException($"container {id}: runc create did not finish within {_options.CreateTimeout.TotalSeconds:F0} s");
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (line is null)
        {
            throw new RuntimeFailureException($"container {id}: conmon exited without reporting the container's pid");
        }

        var (pid, message) = ParseSync(line);
        if (pid <= 0)
        {
            string reason = message is null ? "no message" : RuncClient.MessageOf(message);
            if (reason.Contains("already exists", StringComparison.Ordinal))
            {
                throw new AlreadyExistsException($"container {id}: {reason}");
            }

            throw new RuntimeFailureException($"container create failed: {reason}");
        }

        return (pid, forked);
    }

    private List<string> ConmonArgs(CreateContainerRequest request, ContainerFiles files)
    {
        // cri-o 1.26's flags, less --syslog (crid logs to its own stderr) and -s (cgroupfs only).
        var args = new List<string>
        {
            _options.ConmonPath,
            "-b", request.BundlePath,
            "-c", request.Id,
            "--exit-dir", Path.Combine(_options.StateDir, "exits"),
            "-l", request.LogPath,
            "--log-level", _options.MonitorLogLevel,
            "-n", request.Name.Length > 0 ? request.Name : request.Id,
            "-P", files.ConmonPidFile,
            "-p", files.ContainerPidFile,
            "--persist-dir", files.PersistDir,
            "-r", _options.RuntimePath,
            "--runtime-arg", "--root=" + _options.RuntimeRoot,
            "--socket-dir-path", Path.Combine(_options.StateDir, "attach"),
            "-u", request.Id,
        };
        if (_options.LogSizeMax >= 0)
        {
            args.AddRange(["--log-size-max", _options.LogSizeMax.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        }

        if (request.Terminal)
        {
            args.Add("-t");
        }
        else if (request.Stdin)
        {
            if (!request.StdinOnce)
            {
                args.Add("--leave-stdin-open");
            }

            args.Add("-i");
        }

        return args;
    }

    private static void CheckCreate(CreateContainerRequest request)
    {
        if (!Path.IsPathFullyQualified(request.BundlePath))
        {
            throw new InvalidArgumentException("bundle", $"\"{request.BundlePath}\" is not an absolute path");
        }

        if (request.BundleReady is null)
        {
            CheckConfig(request);
        }

        if (!Path.IsPathFullyQualified(request.LogPath) || request.LogPath.EndsWith('/'))
        {
            throw new InvalidArgumentException("log_path", $"\"{request.LogPath}\" is not an absolute file path");
        }

        if (!Directory.Exists(Path.GetDirectoryName(request.LogPath)))
        {
            throw new InvalidArgumentException("log_path", $"the folder of {request.LogPath} does not exist");
        }
    }

    private static void CheckConfig(CreateContainerRequest request)
    {
        if (!File.Exists(Path.Combine(request.BundlePath, "config.json")))
        {
            throw new InvalidArgumentException("bundle", $"{request.BundlePath} has no config.json");
        }
    }

    /// <summary>Reads up to the first newline (conmon's JSON answers are one line each); null at end of file.</summary>
    private static async Task<string?> ReadLineAsync(Socket socket, CancellationToken cancellationToken)
    {
        var line = new MemoryStream();
        var buffer = new byte[512];
        while (line.Length < 64 * 1024)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return line.Length == 0 ? null : Encoding.UTF8.GetString(line.ToArray());
            }

            int nl = Array.IndexOf(buffer, (byte)'\n', 0, n);
            line.Write(buffer, 0, nl < 0 ? n : nl);
            if (nl >= 0)
            {
                return Encoding.UTF8.GetString(line.ToArray());
            }
        }

        return Encoding.UTF8.GetString(line.ToArray());
    }

    /// <summary>{"pid": N} or {"pid": -1, "message": "..."} (conmon's write_sync_fd; "data" with --api-version 1).</summary>
    internal static (int Pid, string? Message) ParseSync(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            int pid = root.TryGetProperty("pid", out var p) || root.TryGetProperty("data", out p) ? p.GetInt32() : -1;
            string? message = root.TryGetProperty("message", out var m) ? m.GetString() : null;
            return (pid, message);
        }
        catch (JsonException)
        {
            return (-1, $"unreadable answer from conmon: {line}");
        }
    }

    private static void RemoveStale(ContainerFiles files)
    {
        File.Delete(files.ExitFile);
        if (new FileInfo(files.AttachLink).LinkTarget is not null || File.Exists(files.AttachLink))
        {
            File.Delete(files.AttachLink);
        }
    }

    /// <summary>Undoes a create at any step, in reverse: the monitor, runc's state, the files, a log file it made.</summary>
    private async Task RollbackCreateAsync(ContainerFiles files, CreateContainerRequest request, ChildProcess? conmon, bool removeLog, bool deleteInRuntime)
    {
        try
        {
            if (conmon is not null && !conmon.Exited.IsCompleted)
            {
                conmon.Signal(Signals.SIGKILL);
                await conmon.Exited.ConfigureAwait(false);
            }

            if (deleteInRuntime)
            {
                await _runc.DeleteAsync(request.Id, CancellationToken.None).ConfigureAwait(false);
            }

            await WaitForMonitorAsync(files, TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            RuntimeLog.RollbackFailed(_logger, e, request.Id, "runc delete");
        }

        try
        {
            RemoveFiles(files, request.BundlePath);
            if (removeLog)
            {
                File.Delete(request.LogPath);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            RuntimeLog.RollbackFailed(_logger, e, request.Id, "file removal");
        }

        _exits.Forget(request.Id);
    }
}
