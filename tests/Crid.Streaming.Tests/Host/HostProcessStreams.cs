using System.Collections.Concurrent;
using System.Diagnostics;
using Crid.Core.Errors;

namespace Crid.Streaming.Tests.Host;

/// <summary>
/// <see cref="IContainerStreams"/> over plain host processes, for the streaming server's tests: exec
/// runs the command on the host (through a pty with a tty), attach joins a long-lived process the
/// test started as a container's "main process". What the container lifecycle will do with runc and
/// conmon, minus the container.
/// </summary>
internal sealed class HostProcessStreams : IContainerStreams
{
    public const string Container = "host-container";

    private readonly ConcurrentDictionary<string, MainProcess> _mains = new();

    /// <summary>Every process an exec started, to check none outlives its session.</summary>
    public ConcurrentBag<int> ExecPids { get; } = [];

    /// <summary>The sizes exec'd ttys were given, in order.</summary>
    public ConcurrentQueue<TerminalSize> Resizes { get; } = new();

    public string CheckRunning(string containerId)
    {
        if (containerId != Container && !_mains.ContainsKey(containerId))
            throw new NotFoundException($"container \"{containerId}\" not found");
        return containerId;
    }

    /// <summary>A "container" whose main process reads stdin: what attach connects to.</summary>
    public MainProcess StartMain(string containerId, params string[] command)
    {
        var main = new MainProcess(command);
        _mains[containerId] = main;
        return main;
    }

    public async Task<int> ExecAsync(string containerId, IReadOnlyList<string> command, ContainerIo io, CancellationToken cancel)
    {
        CheckRunning(containerId);
        return io.Tty ? await RunWithTtyAsync(command, io, cancel) : await RunPipedAsync(command, io, cancel);
    }

    public async Task AttachAsync(string containerId, ContainerIo io, CancellationToken cancel)
    {
        CheckRunning(containerId);
        var main = _mains[containerId];
        using var detach = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var output = new List<Task>
        {
            Pump(main.Process.StandardOutput.BaseStream, io.Stdout, detach.Token),
            Pump(main.Process.StandardError.BaseStream, io.Stderr, detach.Token),
        };
        var input = io.Stdin is null ? Task.CompletedTask : Task.Run(async () =>
        {
            await Pump(io.Stdin, main.Process.StandardInput.BaseStream, detach.Token, close: false);
            // stdin_once: the end of the attached stdin is the end of the container's.
            main.Process.StandardInput.Close();
        });
        try
        {
            await main.Process.WaitForExitAsync(cancel);
            await Task.WhenAll(output).WaitAsync(cancel);
        }
        finally
        {
            await detach.CancelAsync();
            await Task.WhenAll(output.Append(input)).ContinueWith(_ => { });
        }
    }

    private async Task<int> RunPipedAsync(IReadOnlyList<string> command, ContainerIo io, CancellationToken cancel)
    {
        var info = new ProcessStartInfo(command[0])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in command.Skip(1))
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        ExecPids.Add(process.Id);
        using var exited = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var output = Task.WhenAll(
            Pump(process.StandardOutput.BaseStream, io.Stdout, cancel),
            Pump(process.StandardError.BaseStream, io.Stderr, cancel));
        var input = io.Stdin is null
            ? Task.Run(process.StandardInput.Close)
            : Pump(io.Stdin, process.StandardInput.BaseStream, exited.Token);
        try
        {
            await process.WaitForExitAsync(cancel);
            await output.WaitAsync(cancel);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            throw;
        }
        finally
        {
            // Stop reading the client's stdin once the process is gone.
            await exited.CancelAsync();
            await input.ContinueWith(_ => { });
        }
        return process.ExitCode;
    }

    private async Task<int> RunWithTtyAsync(IReadOnlyList<string> command, ContainerIo io, CancellationToken cancel)
    {
        using var pty = Pty.Open();
        // setsid -c makes the pts (its stdin, opened by the shell) the session's controlling terminal.
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add($"exec setsid -c \"$@\" <>{pty.SlavePath} >&0 2>&0");
        info.ArgumentList.Add("sh");
        foreach (var arg in command)
            info.ArgumentList.Add(arg);
        var resizes = Task.CompletedTask;
        if (io.Resizes is { } sizes)
        {
            // Clients send their size as soon as the streams are up: give it a moment to arrive, so the
            // process sees it from the start, but do not depend on it.
            using (var moment = CancellationTokenSource.CreateLinkedTokenSource(cancel))
            {
                moment.CancelAfter(TimeSpan.FromSeconds(1));
                try
                {
                    if (await sizes.WaitToReadAsync(moment.Token) && sizes.TryRead(out var first))
                        Apply(pty, first);
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                }
            }
            resizes = Task.Run(async () =>
            {
                try
                {
                    await foreach (var size in sizes.ReadAllAsync(cancel))
                        Apply(pty, size);
                }
                catch (OperationCanceledException)
                {
                }
            });
        }
        using var process = Process.Start(info)!;
        ExecPids.Add(process.Id);
        using var exited = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        using var master = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(pty.Master.DangerousGetHandle(), ownsHandle: false), FileAccess.ReadWrite, 0);
        // The master reads EIO once every slave end is closed: that is the end of the output.
        var output = Pump(master, io.Stdout, cancel, close: false);
        var input = io.Stdin is null ? Task.CompletedTask : Pump(io.Stdin, master, exited.Token, close: false);
        try
        {
            await process.WaitForExitAsync(cancel);
            await output.WaitAsync(cancel);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            throw;
        }
        finally
        {
            await exited.CancelAsync();
            await input.ContinueWith(_ => { });
        }
        return process.ExitCode;
    }

    private void Apply(Pty pty, TerminalSize size)
    {
        Resizes.Enqueue(size);
        pty.Resize(size.Width, size.Height);
    }

    private static async Task Pump(Stream from, Stream? to, CancellationToken cancel, bool close = true)
    {
        var buffer = new byte[32 * 1024];
        try
        {
            while (true)
            {
                int n = await from.ReadAsync(buffer, cancel);
                if (n == 0)
                    break;
                if (to is not null)
                    await to.WriteAsync(buffer.AsMemory(0, n), cancel);
            }
        }
        catch (IOException)
        {
            // A pty master at the end (EIO), or a client gone.
        }
        catch (OperationCanceledException)
        {
        }
        if (close && to is not null)
            await to.DisposeAsync();
    }

    /// <summary>A long-lived process standing in for a container's main process.</summary>
    internal sealed class MainProcess : IDisposable
    {
        public MainProcess(string[] command)
        {
            var info = new ProcessStartInfo(command[0])
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in command.Skip(1))
                info.ArgumentList.Add(arg);
            Process = Process.Start(info)!;
        }

        public Process Process { get; }

        public void Dispose()
        {
            if (!Process.HasExited)
                Process.Kill(entireProcessTree: true);
            Process.WaitForExit();
            Process.Dispose();
        }
    }
}
