using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Grpc.Core;
using Grpc.Net.Client;
using Runtime.V1;

namespace Crid.Bench;

/// <summary>
/// The real daemon binary on folders under one temporary dir: its socket, state dir and namespaces
/// dir, and an explicit empty config so the host's /etc/crid/crid.yaml plays no part.
/// </summary>
internal sealed class DaemonUnderTest : IDisposable
{
    private const int SIGTERM = 15;
    private const int SIGKILL = 9;
    private readonly string _binary;
    private readonly Queue<string> _lastLines = new();
    private Process? _process;

    private readonly string? _logLevel;

    private StreamWriter? _log;

    public DaemonUnderTest(string binary, string dir, string? logLevel = null, string? logFile = null)
    {
        if (logFile is not null)
            _log = new StreamWriter(logFile, append: true) { AutoFlush = true };
        _binary = binary;
        _logLevel = logLevel;
        Dir = dir;
        Directory.CreateDirectory(Path.Combine(Dir, "run"));
        Directory.CreateDirectory(CniConfDir);
        File.WriteAllText(ConfigPath, "");
    }

    public string Dir { get; }
    public string Socket => Path.Combine(Dir, "run", "crid.sock");
    public string StateDir => Path.Combine(Dir, "state");
    public string NamespacesDir => Path.Combine(Dir, "ns");

    /// <summary>
    /// The containers' runtime folder, apart from <see cref="Dir"/> (attach socket paths must fit in
    /// 108 bytes), and their cgroup parent: both named with a random part, never the host's.
    /// </summary>
    public string RuntimeRoot { get; } = "/tmp/crb-" + Guid.NewGuid().ToString("N")[..8];

    public string CgroupParent { get; } = "/crid-bench-" + Guid.NewGuid().ToString("N")[..8];
    private string ConfigPath => Path.Combine(Dir, "empty.yaml");

    /// <summary>
    /// The daemon's CNI folder: empty (loopback only) except during the network rows, so neither the
    /// host's /etc/cni/net.d nor another plugin of /opt/cni/bin plays a part.
    /// </summary>
    public string CniConfDir => Path.Combine(Dir, "net.d");

    public int Pid => _process?.Id ?? throw new InvalidOperationException("the daemon is not running");

    /// <summary>The Stopwatch timestamp taken just before the last <see cref="StartAsync"/> created the process.</summary>
    public long StartedAt { get; private set; }

    /// <summary>The daemon's last log lines, to explain a failure.</summary>
    public string LastLines { get { lock (_lastLines) return string.Join('\n', _lastLines); } }

    /// <summary>
    /// Starts the daemon and returns the time from just before the process is created to the first
    /// answered Version call on a fresh connection, the way a kubelet restarted beside it would see it.
    /// </summary>
    public async Task<double> StartAsync()
    {
        if (_process is { HasExited: false })
            throw new InvalidOperationException("the daemon is already running");
        var info = new ProcessStartInfo(_binary)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--listen", Socket, "--state-dir", StateDir, "--namespaces-dir", NamespacesDir, "--config", ConfigPath,
            "--cni-conf-dir", CniConfDir, "--cni-bin-dir", BenchNetwork.BinDir, "--runtime-root", RuntimeRoot, "--default-cgroup-parent", CgroupParent })
            info.ArgumentList.Add(a);
        if (_logLevel is not null)
        {
            info.ArgumentList.Add("--log-level");
            info.ArgumentList.Add(_logLevel);
        }
        using var channel = CreateChannel(Socket);
        var client = new RuntimeService.RuntimeServiceClient(channel);
        var watch = Stopwatch.StartNew();
        StartedAt = Stopwatch.GetTimestamp();
        _process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {_binary}");
        _process.ErrorDataReceived += (_, e) => Keep(e.Data);
        _process.OutputDataReceived += (_, e) => Keep(e.Data);
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
        while (true)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"crid exited with {_process.ExitCode} at start:\n{LastLines}");
            if (File.Exists(Socket))
            {
                try
                {
                    await client.VersionAsync(new VersionRequest { Version = "v1" }, deadline: DateTime.UtcNow.AddSeconds(5));
                    return watch.Elapsed.TotalMilliseconds;
                }
                catch (RpcException) when (watch.Elapsed < TimeSpan.FromSeconds(30))
                {
                    // The socket file appears at bind(2), a moment before Kestrel accepts on it.
                }
            }
            else if (watch.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException($"crid did not create {Socket} within 30 s:\n{LastLines}");
            }
            // Polling granularity bounds the error of the start-up figure; 1 ms keeps it small.
            await Task.Delay(1);
        }
    }

    /// <summary>SIGTERM, as systemd stops it, and wait for the exit.</summary>
    public async Task StopAsync()
    {
        var p = _process ?? throw new InvalidOperationException("the daemon is not running");
        if (!p.HasExited && kill(p.Id, SIGTERM) != 0)
            throw new InvalidOperationException($"kill({p.Id}, SIGTERM): errno {Marshal.GetLastPInvokeError()}");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await p.WaitForExitAsync(cts.Token);
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"crid exited with {p.ExitCode} on SIGTERM:\n{LastLines}");
    }

    /// <summary>SIGKILL, the crash case: nothing of the daemon runs after it; wait for the exit.</summary>
    public async Task KillAsync()
    {
        var p = _process ?? throw new InvalidOperationException("the daemon is not running");
        if (!p.HasExited && kill(p.Id, SIGKILL) != 0)
            throw new InvalidOperationException($"kill({p.Id}, SIGKILL): errno {Marshal.GetLastPInvokeError()}");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await p.WaitForExitAsync(cts.Token);
    }

    /// <summary>VmRSS or VmHWM (the peak) of the daemon from /proc/&lt;pid&gt;/status, in KiB.</summary>
    public long StatusKiB(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(field.Length + 1).Trim().TrimEnd("kB").Trim());
        }
        throw new InvalidOperationException($"/proc/{Pid}/status has no {field}");
    }

    public static GrpcChannel CreateChannel(string socketPath) => UnixSocketChannel.Create(socketPath);

    private void Keep(string? line)
    {
        if (line is null)
            return;
        lock (_lastLines)
        {
            _log?.WriteLine(line);
            _lastLines.Enqueue(line);
            while (_lastLines.Count > 40)
                _lastLines.Dequeue();
        }
    }

    /// <summary>
    /// Kills a daemon still running (a failed run); the folder is the caller's to clean. The runtime
    /// folder and the cgroup parent go when empty (the containers were removed).
    /// </summary>
    public void Dispose()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill();
            p.WaitForExit();
        }
        _process?.Dispose();
        KillLeftContainers();
        lock (_lastLines)
        {
            // A line read after this is only kept in memory.
            _log?.Dispose();
            _log = null;
        }
        try { Directory.Delete(RuntimeRoot, recursive: true); }
        catch (IOException) { }
        foreach (var controller in Directory.Exists("/sys/fs/cgroup") ? Directory.EnumerateDirectories("/sys/fs/cgroup") : [])
        {
            try { Directory.Delete(controller + CgroupParent); }
            catch (IOException) { }
        }
    }

    /// <summary>
    /// After a failed run: every container still in the daemon's runc root (the default handler's,
    /// &lt;runtime-root&gt;/default/runc) is deleted with --force, so no sleep and no conmon outlive the run.
    /// </summary>
    private void KillLeftContainers()
    {
        var root = Path.Combine(RuntimeRoot, "default", "runc");
        if (!Directory.Exists(root))
            return;
        foreach (var state in Directory.EnumerateDirectories(root))
        {
            try
            {
                using var runc = Process.Start(new ProcessStartInfo("/usr/sbin/runc", ["--root", root, "delete", "--force", Path.GetFileName(state)])
                {
                    RedirectStandardError = true,
                    RedirectStandardOutput = true,
                    UseShellExecute = false,
                })!;
                runc.WaitForExit(10_000);
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // No runc: then no container either.
            }
        }
    }

    // DllImport, not LibraryImport: the generator would need unsafe code, which stays in Crid.Linux.
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
