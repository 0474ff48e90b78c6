using Crid.Core.Containers;

namespace Crid.Streaming.Containers;

/// <summary>
/// Exec for an <see cref="IContainerStreams"/> implementation: a client's <see cref="ContainerIo"/>
/// wired to an <see cref="IContainerRuntime"/> interactive exec (runc exec, with a pty for a tty).
/// What is left to the implementation is finding the container and its runtime.
/// </summary>
public static class RuntimeExec
{
    // kubectl and crictl send the terminal's size as soon as their streams are up; waiting this long
    // for it lets the command start at the right size instead of 0x0.
    private static readonly TimeSpan FirstSizeWait = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Runs <paramref name="command"/> in the running container <paramref name="containerId"/> until
    /// it exits and its output is delivered; returns its exit code. Cancelled (the client is gone),
    /// the command is killed before this returns.
    /// </summary>
    /// <exception cref="Crid.Core.Errors.FailedPreconditionException">the container is not running.</exception>
    public static async Task<int> RunAsync(IContainerRuntime runtime, string containerId, IReadOnlyList<string> command, ContainerIo io, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(io);
        TerminalSize? first = io.Tty && io.Resizes is { } sizes ? await FirstSizeAsync(sizes, cancel).ConfigureAwait(false) : null;
        var request = new ExecRequest
        {
            Id = containerId,
            Command = command,
            Tty = io.Tty,
            Stdin = io.Stdin is not null,
            Stdout = io.Stdout is not null,
            Stderr = io.Stderr is not null,
            InitialSize = first is { } size ? (size.Height, size.Width) : default,
        };
        var session = await runtime.ExecAsync(request, cancel).ConfigureAwait(false);
        await using (session.ConfigureAwait(false))
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            var output = Task.WhenAll(
                Pumps.CopyAsync(session.Stdout, io.Stdout, stop.Token),
                Pumps.CopyAsync(session.Stderr, io.Stderr, stop.Token));
            var input = io.Stdin is { } stdin && session.Stdin is { } target
                ? Pumps.CopyThenCloseAsync(stdin, target, stop.Token)
                : Task.CompletedTask;
            var resizes = io.Resizes is { } more
                ? Pumps.ForEachAsync(more, size => session.Resize(size.Height, size.Width), stop.Token)
                : Task.CompletedTask;
            try
            {
                int exit = await session.Exited.WaitAsync(cancel).ConfigureAwait(false);
                // The command is gone; what it wrote before is still on its way out.
                await output.WaitAsync(cancel).ConfigureAwait(false);
                return exit;
            }
            finally
            {
                // Stdin and resizes end with the command (disposing the session kills one still running).
                await stop.CancelAsync().ConfigureAwait(false);
                await session.DisposeAsync().ConfigureAwait(false);
                await Task.WhenAll(input, resizes, output).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
            }
        }
    }

    private static async Task<TerminalSize?> FirstSizeAsync(System.Threading.Channels.ChannelReader<TerminalSize> sizes, CancellationToken cancel)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        wait.CancelAfter(FirstSizeWait);
        try
        {
            if (await sizes.WaitToReadAsync(wait.Token).ConfigureAwait(false) && sizes.TryRead(out var size))
                return size;
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            // No size yet: the terminal starts at the runtime's default and follows later resizes.
        }
        return null;
    }
}
