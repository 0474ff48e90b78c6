using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Crid.Bench;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// The real `out/crid` process on a temporary socket, state dir and namespaces dir, and a
/// Grpc.Net.Client channel to it over the Unix socket. Disposing stops it and deletes the folders.
/// </summary>
internal sealed class DaemonProcess : IAsyncDisposable
{
    private readonly StringBuilder _stderr = new();
    private Process? _process;

    public string Dir { get; }
    public string Socket => Path.Combine(Dir, "run", "crid.sock");
    public string StateDir => Path.Combine(Dir, "state");
    public string NamespacesDir => Path.Combine(Dir, "ns");

    /// <summary>
    /// The runtime's folder, apart from <see cref="Dir"/>: attach socket paths under it must fit in
    /// 108 bytes, which /tmp/crid-e2e-XXXXXX/... leaves no room for. Made by the daemon, removed on dispose.
    /// </summary>
    public string RuntimeRoot { get; } = ShortRuntimeRoot();

    /// <summary>Containers' cgroups go under this parent (named with a random part), removed on dispose.</summary>
    public string CgroupParent { get; } = "/crid-e2e-" + Guid.NewGuid().ToString("N")[..10];

    /// <summary>A short folder name under /tmp with a random part, not created.</summary>
    public static string ShortRuntimeRoot() => "/tmp/crr-" + Guid.NewGuid().ToString("N")[..8];
    public GrpcChannel Channel { get; private set; } = null!;
    public RuntimeService.RuntimeServiceClient Runtime { get; private set; } = null!;
    public ImageService.ImageServiceClient Images { get; private set; } = null!;
    public Process Process => _process ?? throw new InvalidOperationException("not started");
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    private DaemonProcess(string dir) => Dir = dir;

    public static async Task<DaemonProcess> StartAsync(params string[] extraArgs)
    {
        var daemon = new DaemonProcess(Directory.CreateTempSubdirectory("crid-e2e-").FullName);
        await daemon.RestartAsync(extraArgs);
        return daemon;
    }

    public string[] DefaultArgs() =>
        ["--listen", Socket, "--state-dir", StateDir, "--namespaces-dir", NamespacesDir, "--log-level", "debug",
         "--runtime-root", RuntimeRoot, "--default-cgroup-parent", CgroupParent,
         "--config", WriteEmptyConfig(),
         // The host's /etc/cni/net.d must not put test pods on a real network; CNI tests pass their own.
         "--cni-conf-dir", Path.Combine(Dir, "net.d")];

    private string WriteEmptyConfig()
    {
        // An explicit, empty config file keeps the host's /etc/crid/crid.yaml out of the tests.
        var path = Path.Combine(Dir, "empty.yaml");
        if (!File.Exists(path))
            File.WriteAllText(path, "");
        return path;
    }

    /// <summary>Environment variables the next (re)start gets besides the test's own (TestCrash's, say).</summary>
    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    /// <summary>Starts (again) on the same folders and waits until Version answers.</summary>
    public async Task RestartAsync(params string[] extraArgs)
    {
        _process = Launch([.. DefaultArgs(), .. extraArgs], _stderr, Environment, Dir);
        Channel?.Dispose();
        Channel = CreateChannel(Socket);
        Runtime = new RuntimeService.RuntimeServiceClient(Channel);
        Images = new ImageService.ImageServiceClient(Channel);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"crid exited with {_process.ExitCode} at start:\n{Stderr}");
            try
            {
                await Runtime.VersionAsync(new VersionRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
                return;
            }
            catch (RpcException) when (deadline.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(20);
            }
        }
    }

    /// <param name="workingDirectory">
    /// The daemon's own folder: the processes it starts (infra, helper children) inherit it, which
    /// tells them apart from another test's daemon's (<see cref="Leaks.StartedBy"/>).
    /// </param>
    public static Process Launch(IEnumerable<string> args, StringBuilder? stderr = null, IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(RepoPaths.Daemon)
        {
            WorkingDirectory = workingDirectory ?? "",
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            info.Environment[name] = value;
        var process = Process.Start(info)!;
        var sink = stderr ?? new StringBuilder();
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (sink) sink.AppendLine(e.Data); };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (sink) sink.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        return process;
    }

    public static GrpcChannel CreateChannel(string socketPath) => UnixSocketChannel.Create(socketPath);

    /// <summary>SIGTERM and wait; returns the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan? timeout = null)
    {
        var p = Process;
        if (!p.HasExited)
            Signals.Send(p.Id, Signals.SIGTERM);
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        await p.WaitForExitAsync(cts.Token);
        return p.ExitCode;
    }

    /// <summary>The daemon's stderr is read asynchronously: a line logged before the answer may arrive after it.</summary>
    public async Task LoggedAsync(string text)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (!Stderr.Contains(text, StringComparison.Ordinal))
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), $"the daemon never logged \"{text}\":\n{Stderr}");
            await Task.Delay(20);
        }
    }

    public async Task KillAsync()
    {
        var p = Process;
        if (!p.HasExited)
            p.Kill();
        // Not WaitForExitAsync: it also waits for EOF on stdout/stderr, which never comes while
        // anything that inherited them (a leaked child) lives; the tests must see that, not hang.
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!p.HasExited)
            await Task.Delay(5, cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        Channel?.Dispose();
        if (_process is { HasExited: false })
        {
            try { await StopAsync(TimeSpan.FromSeconds(5)); }
            catch (OperationCanceledException) { _process.Kill(); await _process.WaitForExitAsync(); }
        }
        await Cleanup.RemoveTreeAsync(Dir, NamespacesDir);
        await Cleanup.RemoveRuntimeRootAsync(RuntimeRoot);
        Cleanup.RemoveCgroups(CgroupParent);
    }
}
