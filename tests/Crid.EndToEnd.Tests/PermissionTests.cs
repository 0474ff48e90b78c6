using System.Diagnostics;
using System.Text.Json;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>Who may reach the daemon, who may read or write what it writes, and that no user string becomes a path.</summary>
public sealed class PermissionTests
{
    private const UnixFileMode WritableByOthers = UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;

    [Fact]
    public async Task The_socket_is_0660_owned_by_the_socket_group_and_the_state_is_root_only_below_a_searchable_state_dir()
    {
        // adm (gid 4) exists on every Debian; the numeric form is tested with it too.
        var adm = File.ReadLines("/etc/group").Select(l => l.Split(':')).FirstOrDefault(f => f[0] == "adm");
        Assert.True(adm is not null, "the test needs the group adm of /etc/group");
        foreach (var group in new[] { "adm", adm[2] })
        {
            await using var d = await DaemonProcess.StartAsync("--socket-group", group);
            Assert.Equal("660 " + adm[2], Stat("%a %g", d.Socket));

            var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("perm") })).PodSandboxId;
            var dir = Path.Combine(d.StateDir, "sandboxes", id);
            // Searchable, not listable: a user-namespaced pod's root passes through to its container's
            // rootfs (runc mounts it from inside the pod's user namespace); everything below is private.
            Assert.Equal("711", Stat("%a", d.StateDir));
            Assert.Equal("700", Stat("%a", Path.Combine(d.StateDir, "sandboxes")));
            Assert.Equal("700", Stat("%a", dir));
            Assert.Equal("600", Stat("%a", Path.Combine(dir, "config.json")));
            Assert.Equal("600", Stat("%a", Path.Combine(dir, "sandbox.json")));
            // Bind-mounted read-only into the pod, so they must be readable; never writable.
            Assert.Equal("644", Stat("%a", Path.Combine(dir, "resolv.conf")));
            Assert.Equal("644", Stat("%a", Path.Combine(dir, "hostname")));
            foreach (var typeDir in Directory.EnumerateDirectories(d.NamespacesDir))
            {
                Assert.Equal(0, (int)(File.GetUnixFileMode(typeDir) & WritableByOthers));
                foreach (var pin in Directory.EnumerateFiles(typeDir))
                {
                    Assert.Equal(0, (int)(File.GetUnixFileMode(pin) & WritableByOthers));
                    Assert.Equal("0 0", Stat("%u %g", pin));
                }
            }
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        }
    }

    [Fact]
    public async Task A_socket_group_that_does_not_exist_stops_the_start()
    {
        var dir = Directory.CreateTempSubdirectory("crid-perm-").FullName;
        try
        {
            using var p = DaemonProcess.Launch(["--listen", Path.Combine(dir, "crid.sock"), "--state-dir", Path.Combine(dir, "state"),
                "--namespaces-dir", Path.Combine(dir, "ns"), "--config", "/dev/null", "--socket-group", "no-such-group-crid",
                "--runtime-root", DaemonProcess.ShortRuntimeRoot()]);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            while (!p.HasExited)
                await Task.Delay(10, cts.Token);
            Assert.NotEqual(0, p.ExitCode);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task User_strings_never_become_paths()
    {
        await using var d = await DaemonProcess.StartAsync();
        var marker = "crid-escape-" + Guid.NewGuid().ToString("N")[..8];
        var escape = $"../../../../../../tmp/{marker}";
        var config = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = escape, Namespace = "../" + marker, Uid = "/tmp/" + marker, Attempt = 1 },
            Hostname = "..",
            LogDirectory = $"/tmp/{marker}-logs",
            Labels = { [escape] = escape },
            Annotations = { [escape] = escape },
            DnsConfig = new DNSConfig { Servers = { escape }, Searches = { escape } },
            Linux = new LinuxPodSandboxConfig
            {
                CgroupParent = escape,
                SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Pid = NamespaceMode.Pod } },
            },
        };
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config })).PodSandboxId;
        var status = await d.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = id, Verbose = true });
        using (var info = JsonDocument.Parse(status.Info["info"]))
        {
            foreach (var pin in info.RootElement.GetProperty("pins").EnumerateObject())
                Assert.StartsWith(d.NamespacesDir + "/", pin.Value.GetString());
        }
        await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });

        // Every path the daemon created is named by ids and uuids it chose, never by the request.
        foreach (var entry in Leaks.Tree(d.Dir))
        {
            Assert.DoesNotContain(marker, entry);
            Assert.DoesNotContain("..", entry);
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries("/tmp", marker + "*"));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(d.Dir)!, marker + "*"));
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
    }

    private static string Stat(string format, string path)
    {
        var info = new ProcessStartInfo("stat") { RedirectStandardOutput = true, ArgumentList = { "-c", format, path } };
        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return output;
    }
}
