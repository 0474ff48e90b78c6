using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>The daemon as a process: its calls, its start-up checks and its shutdown.</summary>
public sealed class DaemonTests
{
    [Fact]
    public async Task Version_names_crid_and_api_v1()
    {
        await using var d = await DaemonProcess.StartAsync();
        var v = await d.Runtime.VersionAsync(new VersionRequest { Version = "v1" });
        Assert.Equal("0.1.0", v.Version);
        Assert.Equal("crid", v.RuntimeName);
        Assert.Equal("v1", v.RuntimeApiVersion);
        Assert.StartsWith("0.1.0", v.RuntimeVersion);
    }

    [Fact]
    public async Task Status_reports_both_conditions_and_the_effective_config()
    {
        await using var d = await DaemonProcess.StartAsync();
        var status = await d.Runtime.StatusAsync(new StatusRequest { Verbose = true });
        var runtime = Assert.Single(status.Status.Conditions, c => c.Type == "RuntimeReady");
        Assert.True(runtime.Status);
        Assert.NotEmpty(runtime.Reason);
        var network = Assert.Single(status.Status.Conditions, c => c.Type == "NetworkReady");
        Assert.NotEmpty(network.Reason);
        Assert.NotEmpty(network.Message);
        using var config = JsonDocument.Parse(status.Info["config"]);
        Assert.Equal(d.StateDir, config.RootElement.GetProperty("state-dir").GetString());
        Assert.Equal(d.NamespacesDir, config.RootElement.GetProperty("namespaces-dir").GetString());
        Assert.Equal(d.Socket, config.RootElement.GetProperty("listen").GetString());
        // Every key is a key of the YAML file, and nothing else but the file itself.
        var keys = config.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(["config", "listen", "state-dir", "namespaces-dir", "log-level", "socket-group", "runtime-handlers", "cni-conf-dir", "cni-bin-dir", "cni-timeout",
            "runtime-path", "runtime-root", "conmon-path", "default-cgroup-parent", "pids-limit", "registries", "registry-credentials", "pull-idle-timeout",
            "streaming-address", "streaming-port", "streaming-idle-timeout", "events-queue-capacity"], keys);
        Assert.Equal(JsonValueKind.Array, config.RootElement.GetProperty("runtime-handlers").ValueKind);
        Assert.Equal(60, config.RootElement.GetProperty("cni-timeout").GetDouble());
        Assert.Equal("127.0.0.1", config.RootElement.GetProperty("streaming-address").GetString());
        Assert.Equal(0, config.RootElement.GetProperty("streaming-port").GetInt32());

        var quiet = await d.Runtime.StatusAsync(new StatusRequest());
        Assert.Empty(quiet.Info);
    }

    [Fact]
    public async Task ImageFsInfo_reports_the_image_store_and_the_writable_layers()
    {
        await using var d = await DaemonProcess.StartAsync();
        var info = await d.Images.ImageFsInfoAsync(new ImageFsInfoRequest());
        // The image filesystem counts the image store's own bytes and inodes (ImageTests checks them
        // after a pull); an empty store holds none.
        var images = Assert.Single(info.ImageFilesystems);
        Assert.Equal(0ul, images.UsedBytes.Value);
        Assert.StartsWith(images.FsId.Mountpoint, d.StateDir);
        // The container filesystem counts the containers' writable layers (ContainerStatsTests
        // checks them with a container that writes); no container, none.
        var fs = Assert.Single(info.ContainerFilesystems);
        Assert.Equal(0ul, fs.UsedBytes.Value);
        Assert.Equal(0ul, fs.InodesUsed.Value);
        Assert.True(fs.Timestamp > 0);
        Assert.StartsWith(fs.FsId.Mountpoint, d.StateDir);
    }

    [Fact]
    public async Task Images_are_empty_until_images_exist()
    {
        await using var d = await DaemonProcess.StartAsync();
        Assert.Empty((await d.Images.ListImagesAsync(new ListImagesRequest())).Images);
        Assert.Null((await d.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = "busybox" } })).Image);
    }

    [Fact]
    public async Task An_unimplemented_call_names_itself_and_what_crid_serves_and_is_logged_once_by_name()
    {
        await using var d = await DaemonProcess.StartAsync("--log-level", "info");
        // A method no engineer's branch serves yet keeps this test independent of what lands next.
        for (var i = 0; i < 3; i++)
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest()).ResponseAsync);
            Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
            Assert.Contains("does not implement runtime.v1.RuntimeService/CheckpointContainer", e.Status.Detail);
            Assert.Contains("RuntimeService: ", e.Status.Detail);
            Assert.Contains("RunPodSandbox", e.Status.Detail);
            Assert.DoesNotContain("CheckpointContainer,", e.Status.Detail);
        }
        await d.StopAsync();
        var lines = d.Stderr.Split('\n').Where(l => l.Contains("CheckpointContainer", StringComparison.Ordinal)).ToList();
        Assert.Single(lines);
        Assert.Contains("/runtime.v1.RuntimeService/CheckpointContainer Unimplemented", lines[0]);
        Assert.DoesNotContain("with detail", d.Stderr);
    }

    [Fact]
    public async Task An_expected_failure_is_one_line_naming_the_method_without_a_stack_trace()
    {
        await using var d = await DaemonProcess.StartAsync("--log-level", "info");
        var bad = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = new PodSandboxConfig() }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
        var missing = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = "abc" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        await d.StopAsync();
        var log = d.Stderr;
        Assert.Single(log.Split('\n'), l => l.Contains("/runtime.v1.RuntimeService/RunPodSandbox InvalidArgument: config.metadata", StringComparison.Ordinal));
        Assert.Single(log.Split('\n'), l => l.Contains("/runtime.v1.RuntimeService/PodSandboxStatus NotFound", StringComparison.Ordinal));
        Assert.DoesNotContain("   at ", log);
        Assert.DoesNotContain("Exception", log);
    }

    [Fact]
    public async Task At_debug_each_call_is_one_line()
    {
        await using var d = await DaemonProcess.StartAsync();
        await d.Runtime.VersionAsync(new VersionRequest());
        await Assert.ThrowsAsync<RpcException>(() => d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = "abc" }).ResponseAsync);
        await d.StopAsync();
        // The harness's own readiness probe is the first Version call.
        Assert.Equal(2, d.Stderr.Split('\n').Count(l => l.Contains("RuntimeService/Version OK", StringComparison.Ordinal)));
        Assert.Single(d.Stderr.Split('\n'), l => l.Contains("RuntimeService/PodSandboxStatus", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_last_line_at_SIGTERM_is_always_written()
    {
        for (var i = 0; i < 3; i++)
        {
            await using var d = await DaemonProcess.StartAsync("--log-level", "info");
            Assert.Equal(0, await d.StopAsync());
            // Stderr is read asynchronously; the process has exited, so what it wrote arrives shortly.
            var deadline = Stopwatch.StartNew();
            while (!d.Stderr.Contains("crid stopped") && deadline.Elapsed < TimeSpan.FromSeconds(5))
                await Task.Delay(20);
            Assert.EndsWith("crid stopped", d.Stderr.TrimEnd());
        }
    }

    [Fact]
    public async Task Version_flag_prints_the_version()
    {
        var (code, output) = await RunDaemonAsync("--version");
        Assert.Equal(0, code);
        Assert.StartsWith("crid 0.1.0", output.Trim());
    }

    [Fact]
    public async Task A_start_refused_for_its_socket_group_leaves_nothing_behind()
    {
        var dir = Directory.CreateTempSubdirectory("crid-e2e-refused-").FullName;
        try
        {
            var config = Path.Combine(dir, "empty.yaml");
            await File.WriteAllTextAsync(config, "");
            var (code, output) = await RunDaemonAsync("--config", config, "--listen", Path.Combine(dir, "run", "s.sock"),
                "--state-dir", Path.Combine(dir, "state", "deep"), "--namespaces-dir", Path.Combine(dir, "ns"), "--socket-group", "no-such-group-crid",
                "--runtime-root", DaemonProcess.ShortRuntimeRoot());
            Assert.Equal(1, code);
            Assert.Contains("socket-group \"no-such-group-crid\" is not a group of this host", output);
            Assert.Equal(["empty.yaml"], Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Socket_is_0660()
    {
        await using var d = await DaemonProcess.StartAsync();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite,
            File.GetUnixFileMode(d.Socket));
        // The state dir is searchable (a user-namespaced pod's root reaches its rootfs through it),
        // never listable; what is private below it stays 0700.
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Assert.Equal(Private | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute, File.GetUnixFileMode(d.StateDir));
        Assert.Equal(Private, File.GetUnixFileMode(Path.Combine(d.StateDir, "sandboxes")));
        Assert.Equal(Private, File.GetUnixFileMode(Path.Combine(d.StateDir, "images", "blobs", "sha256")));
    }

    /// <summary>
    /// ASP.NET Core's hosts reload appsettings.json on change by default, watching the working folder
    /// and every folder below it with inotify: under systemd that is all of /. Both of crid's hosts (the
    /// gRPC server and the streaming server) turn it off; the daemon's own watches (the CNI config
    /// folder) remain.
    /// </summary>
    [Fact]
    public async Task The_daemon_watches_nothing_in_its_working_folder()
    {
        await using var d = await DaemonProcess.StartAsync();
        await d.Runtime.VersionAsync(new VersionRequest());
        var pid = d.Process.Id;
        // fdinfo names each watched inode in hex.
        var cwdInode = Convert.ToString(long.Parse(Tool.Run("stat", "-c", "%i", $"/proc/{pid}/cwd/.").Stdout.Trim()), 16);
        var watched = new List<string>();
        foreach (var fd in Directory.GetFiles($"/proc/{pid}/fd"))
        {
            if (new FileInfo(fd).LinkTarget != "anon_inode:inotify")
                continue;
            watched.AddRange(File.ReadAllLines($"/proc/{pid}/fdinfo/{Path.GetFileName(fd)}")
                .Where(l => l.StartsWith("inotify ", StringComparison.Ordinal))
                .Select(l => l.Split(' ').Single(w => w.StartsWith("ino:", StringComparison.Ordinal))[4..]));
        }
        Assert.False(watched.Contains(cwdInode), $"the working folder (inode {cwdInode}) is watched; all watches: {string.Join(", ", watched)}");
    }

    [Fact]
    public async Task Sigterm_exits_0_within_a_second()
    {
        await using var d = await DaemonProcess.StartAsync();
        await d.Runtime.VersionAsync(new VersionRequest());
        var watch = Stopwatch.StartNew();
        var code = await d.StopAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, code);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"took {watch.Elapsed}");
    }

    [Fact]
    public async Task Sigint_exits_0()
    {
        await using var d = await DaemonProcess.StartAsync();
        Signals.Send(d.Process.Id, Signals.SIGINT);
        await d.Process.WaitForExitAsync();
        Assert.Equal(0, d.Process.ExitCode);
    }

    [Fact]
    public async Task A_second_daemon_on_a_live_socket_is_refused()
    {
        await using var d = await DaemonProcess.StartAsync();
        var other = Directory.CreateTempSubdirectory("crid-e2e-second-").FullName;
        try
        {
            var (code, output) = await RunDaemonAsync("--listen", d.Socket, "--state-dir", Path.Combine(other, "state"),
                "--namespaces-dir", Path.Combine(other, "ns"), "--config", Path.Combine(d.Dir, "empty.yaml"), "--runtime-root", DaemonProcess.ShortRuntimeRoot());
            Assert.NotEqual(0, code);
            Assert.Contains("another daemon is answering on " + d.Socket, output);
            // The first one is untouched.
            await d.Runtime.VersionAsync(new VersionRequest());
        }
        finally
        {
            Directory.Delete(other, true);
        }
    }

    [Fact]
    public async Task A_stale_socket_of_a_dead_daemon_is_replaced()
    {
        await using var d = await DaemonProcess.StartAsync();
        await d.KillAsync();
        Assert.True(File.Exists(d.Socket));
        await d.RestartAsync();
        await d.Runtime.VersionAsync(new VersionRequest());
    }

    [Theory]
    [InlineData("listen: /tmp/x.sock\nbogus: 1\n", 2, "key \"bogus\": unknown key")]
    [InlineData("state-dir: relative/dir\n", 1, "key \"state-dir\": \"relative/dir\" is not an absolute path")]
    [InlineData("log-level: info\nnamespaces-dir:\n  - /a\n", 3, "key \"namespaces-dir\": expected a string")]
    public async Task A_bad_config_file_stops_the_start_with_one_line(string yaml, int line, string message)
    {
        var dir = Directory.CreateTempSubdirectory("crid-e2e-config-").FullName;
        try
        {
            var file = Path.Combine(dir, "crid.yaml");
            await File.WriteAllTextAsync(file, yaml);
            var (code, output) = await RunDaemonAsync("--config", file, "--listen", Path.Combine(dir, "s.sock"));
            Assert.NotEqual(0, code);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var only = Assert.Single(lines);
            Assert.StartsWith($"crid: {file}:{line}: ", only);
            Assert.Contains(message, only);
            Assert.False(File.Exists(Path.Combine(dir, "s.sock")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Help_lists_every_flag_with_its_default()
    {
        var (code, output) = await RunDaemonAsync("--help");
        Assert.Equal(0, code);
        foreach (var flag in new[] { "--listen", "--state-dir", "--namespaces-dir", "--config", "--log-level" })
            Assert.Contains(flag, output);
        Assert.Contains("/run/crid/crid.sock", output);
        Assert.Contains("/var/lib/crid", output);
        Assert.Contains("/var/run", output);
    }

    [Fact]
    public async Task Flags_win_over_the_config_file()
    {
        var dir = Directory.CreateTempSubdirectory("crid-e2e-flags-").FullName;
        var file = Path.Combine(dir, "crid.yaml");
        await File.WriteAllTextAsync(file, $"listen: {dir}/from-file.sock\nstate-dir: {dir}/file-state\nlog-level: warning\n");
        await using var d = await DaemonProcess.StartAsync("--config", file);
        var status = await d.Runtime.StatusAsync(new StatusRequest { Verbose = true });
        using var config = JsonDocument.Parse(status.Info["config"]);
        Assert.Equal(d.Socket, config.RootElement.GetProperty("listen").GetString());
        Assert.Equal(d.StateDir, config.RootElement.GetProperty("state-dir").GetString());
        Assert.Equal("debug", config.RootElement.GetProperty("log-level").GetString());
        Assert.False(File.Exists($"{dir}/from-file.sock"));
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task Each_call_is_logged_at_debug()
    {
        await using var d = await DaemonProcess.StartAsync();
        await d.Runtime.VersionAsync(new VersionRequest());
        await d.StopAsync();
        Assert.Contains("/runtime.v1.RuntimeService/Version OK", d.Stderr);
    }

    internal static async Task<(int Code, string Output)> RunDaemonAsync(params string[] args)
    {
        var output = new StringBuilder();
        using var p = DaemonProcess.Launch(args, output);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await p.WaitForExitAsync(cts.Token);
        lock (output) return (p.ExitCode, output.ToString());
    }

    private static string Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true })!;
        var text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return text;
    }
}
