using Crid.Linux;

namespace Crid.Linux.Tests;

public class PodNamespacesTests
{
    private static PodNamespacesRequest Request(string dir, params string[] types) => new()
    {
        NamespacesDir = dir,
        Namespaces = types.Select(t => new NamespaceRequest(t, Host: false)).ToArray(),
    };

    private static readonly IdMapping[] Map = [new IdMapping(0, 100000, 65536)];

    [Fact]
    public void Creates_distinct_pins_per_pod_different_from_host()
    {
        using var tmp = new TempNsDir();
        var a = PodNamespaces.Create(Request(tmp.Path, "net", "ipc", "uts"));
        var b = PodNamespaces.Create(Request(tmp.Path, "net", "ipc", "uts"));
        try
        {
            Assert.NotEqual(a.Uuid, b.Uuid);
            Assert.True(Guid.TryParseExact(a.Uuid, "D", out _));
            Assert.Equal(3, a.Pins.Count);
            foreach (var type in new[] { "net", "ipc", "uts" })
            {
                var pa = a.Get(type)!;
                var pb = b.Get(type)!;
                Assert.Equal(Path.Combine(tmp.Path, type + "ns", a.Uuid), pa.Path);
                Assert.True(pa.IsMounted);
                ulong host = TestHost.Inode($"/proc/self/ns/{type}");
                Assert.NotEqual(host, pa.Inode);
                Assert.NotEqual(pa.Inode, pb.Inode);
                Assert.Equal("755", Convert.ToString((int)File.GetUnixFileMode(Path.GetDirectoryName(pa.Path)!), 8));
            }
        }
        finally
        {
            foreach (var p in a.Pins.Concat(b.Pins))
            {
                p.Remove();
            }
        }

        Assert.Empty(Directory.GetFiles(Path.Combine(tmp.Path, "netns")));
    }

    [Fact]
    public void Sysctls_loopback_and_hostname_apply_inside_only()
    {
        using var tmp = new TempNsDir();
        string hostSomaxconn = File.ReadAllText("/proc/sys/net/core/somaxconn").Trim();
        string hostRmid = File.ReadAllText("/proc/sys/kernel/shm_rmid_forced").Trim();
        string hostName = Environment.MachineName;
        var r = PodNamespaces.Create(Request(tmp.Path, "net", "ipc", "uts") with
        {
            Sysctls = new Dictionary<string, string> { ["net.core.somaxconn"] = "1024", ["kernel/shm_rmid_forced"] = "1" },
            LoopbackUp = true,
            Hostname = "pod-host-1",
        });
        try
        {
            string net = r.Get("net")!.Path, ipc = r.Get("ipc")!.Path, uts = r.Get("uts")!.Path;
            Assert.Equal("1024", TestHost.Ok("nsenter", "--net=" + net, "cat", "/proc/sys/net/core/somaxconn"));
            Assert.Equal("1", TestHost.Ok("nsenter", "--ipc=" + ipc, "cat", "/proc/sys/kernel/shm_rmid_forced"));
            Assert.Equal("pod-host-1", TestHost.Ok("nsenter", "--uts=" + uts, "hostname"));
            Assert.Contains("UP", TestHost.Ok("nsenter", "--net=" + net, "ip", "-o", "link", "show", "lo"), StringComparison.Ordinal);

            // Not /sys/class/net/lo/flags: sysfs shows the network namespace that mounted it.
            Assert.Contains("<LOOPBACK,UP,", TestHost.Ok("nsenter", "--net=" + net, "ip", "-o", "link", "show", "lo"), StringComparison.Ordinal);
        }
        finally
        {
            foreach (var p in r.Pins)
            {
                p.Remove();
            }
        }

        Assert.Equal(hostSomaxconn, File.ReadAllText("/proc/sys/net/core/somaxconn").Trim());
        Assert.Equal(hostRmid, File.ReadAllText("/proc/sys/kernel/shm_rmid_forced").Trim());
        Assert.Equal(hostName, TestHost.Ok("hostname"));
    }

    [Fact]
    public void Loopback_stays_down_when_not_asked()
    {
        using var tmp = new TempNsDir();
        var r = PodNamespaces.Create(Request(tmp.Path, "net"));
        try
        {
            Assert.Contains("<LOOPBACK>", TestHost.Ok("nsenter", "--net=" + r.Get("net")!.Path, "ip", "-o", "link", "show", "lo"), StringComparison.Ordinal);
        }
        finally
        {
            r.Pins[0].Remove();
        }
    }

    [Fact]
    public void User_namespace_maps_ids_owns_the_others_and_pins_are_chowned()
    {
        using var tmp = new TempNsDir();
        var r = PodNamespaces.Create(Request(tmp.Path, "user", "net", "ipc", "uts") with
        {
            UidMappings = Map,
            GidMappings = Map,
            Sysctls = new Dictionary<string, string>
            {
                ["net.ipv4.ping_group_range"] = "0 1000",
                ["kernel.shmmni"] = "1000",
                ["fs.mqueue.msg_max"] = "20",
            },
            LoopbackUp = true,
            Hostname = "mapped",
        });
        try
        {
            var user = r.Get("user")!;
            Assert.Equal(Path.Combine(tmp.Path, "userns", r.Uuid), user.Path);
            Assert.Matches(@"^\s*0\s+100000\s+65536$", TestHost.Ok("nsenter", "--user=" + user.Path, "cat", "/proc/self/uid_map"));
            Assert.Matches(@"^\s*0\s+100000\s+65536$", TestHost.Ok("nsenter", "--user=" + user.Path, "cat", "/proc/self/gid_map"));
            Assert.Equal("allow", TestHost.Ok("nsenter", "--user=" + user.Path, "cat", "/proc/self/setgroups"));
            foreach (var type in new[] { "net", "ipc", "uts" })
            {
                Assert.Equal(user.Inode, NsTestInterop.OwnerUserNsInode(r.Get(type)!.Path));
            }

            Assert.Equal("0 1000", TestHost.Ok("nsenter", "--net=" + r.Get("net")!.Path, "cat", "/proc/sys/net/ipv4/ping_group_range").Replace('\t', ' '));
            Assert.Equal("1000", TestHost.Ok("nsenter", "--ipc=" + r.Get("ipc")!.Path, "cat", "/proc/sys/kernel/shmmni"));
            Assert.Equal("20", TestHost.Ok("nsenter", "--ipc=" + r.Get("ipc")!.Path, "cat", "/proc/sys/fs/mqueue/msg_max"));
            Assert.Equal("mapped", TestHost.Ok("nsenter", "--uts=" + r.Get("uts")!.Path, "hostname"));

            // The nsfs inode on top is root-owned and immutable; the pin file under it is what
            // was chowned. A non-recursive bind of the folder shows the files under the mounts.
            foreach (var pin in r.Pins)
            {
                string owner = TestHost.Ok("unshare", "-m", "sh", "-c",
                    $"mkdir -p '{tmp.Path}/under' && mount --bind '{Path.GetDirectoryName(pin.Path)}' '{tmp.Path}/under' && stat -c %u:%g '{tmp.Path}/under/{r.Uuid}'");
                Assert.Equal("100000:100000", owner);
            }
        }
        finally
        {
            foreach (var p in r.Pins)
            {
                p.Remove();
            }
        }
    }

    [Fact]
    public void Host_and_empty_requests_create_nothing()
    {
        using var tmp = new TempNsDir();
        var empty = PodNamespaces.Create(Request(tmp.Path));
        Assert.Empty(empty.Pins);
        var host = PodNamespaces.Create(new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("net", true), new("ipc", true), new("uts", false)],
        });
        try
        {
            Assert.Single(host.Pins);
            Assert.Null(host.Get("net"));
            Assert.False(Directory.Exists(Path.Combine(tmp.Path, "netns")));
        }
        finally
        {
            host.Pins[0].Remove();
        }

        Assert.DoesNotContain(Directory.GetFileSystemEntries(tmp.Path, "*", SearchOption.AllDirectories), File.Exists);
    }

    [Fact]
    public void Folders_are_created_when_missing()
    {
        using var tmp = new TempNsDir();
        string dir = Path.Combine(tmp.Path, "a", "b");
        var r = PodNamespaces.Create(Request(dir, "uts"));
        r.Pins[0].Remove();
        Assert.True(Directory.Exists(Path.Combine(dir, "utsns")));
    }

    [Fact]
    public void Remove_is_idempotent_and_works_from_path_alone()
    {
        using var tmp = new TempNsDir();
        var r = PodNamespaces.Create(Request(tmp.Path, "net", "ipc", "uts"));
        var net = r.Get("net")!;
        net.Remove();
        net.Remove();
        Assert.False(File.Exists(net.Path));

        var rebuilt = PinnedNamespace.FromPath(r.Get("ipc")!.Path);
        Assert.Equal("ipc", rebuilt.Type);
        Assert.True(rebuilt.IsMounted);
        rebuilt.Remove();
        Assert.False(File.Exists(rebuilt.Path));

        // Unmounted behind our back: Remove still deletes the file.
        var uts = r.Get("uts")!;
        TestHost.Ok("umount", uts.Path);
        Assert.False(uts.IsMounted);
        Assert.True(File.Exists(uts.Path));
        uts.Remove();
        Assert.False(File.Exists(uts.Path));

        Assert.Throws<ArgumentException>(() => PinnedNamespace.FromPath("/tmp/notns/x"));
        Assert.Equal("pid", PinnedNamespace.FromPath("/x/pidns/y").Type);
    }

    [Fact]
    public void List_finds_pins_after_a_restart()
    {
        using var tmp = new TempNsDir();
        var r = PodNamespaces.Create(Request(tmp.Path, "net", "uts"));
        var listed = PinnedNamespace.List(tmp.Path);
        Assert.Equal(r.Pins.Select(p => p.Path).Order(), listed.Select(p => p.Path).Order());
        foreach (var p in listed)
        {
            p.Remove();
        }
    }

    [Fact]
    public void Concurrent_pods_are_distinct_and_fully_removed()
    {
        using var tmp = new TempNsDir();
        var results = new PodNamespacesResult[32];
        Parallel.For(0, 32, new ParallelOptions { MaxDegreeOfParallelism = 32 }, i =>
            results[i] = PodNamespaces.Create(Request(tmp.Path, "net", "ipc", "uts") with
            {
                LoopbackUp = true,
                Hostname = "pod" + i,
                Sysctls = new Dictionary<string, string> { ["net.core.somaxconn"] = (200 + i).ToString(System.Globalization.CultureInfo.InvariantCulture) },
            }));
        var pins = results.SelectMany(r => r.Pins).ToList();
        Assert.Equal(96, pins.Count);
        Assert.Equal(96, pins.Select(p => p.Inode).Distinct().Count());
        Assert.Equal(32, results.Select(r => r.Uuid).Distinct().Count());
        for (int i = 0; i < 32; i += 7)
        {
            Assert.Equal((200 + i).ToString(System.Globalization.CultureInfo.InvariantCulture),
                TestHost.Ok("nsenter", "--net=" + results[i].Get("net")!.Path, "cat", "/proc/sys/net/core/somaxconn"));
            Assert.Equal("pod" + i, TestHost.Ok("nsenter", "--uts=" + results[i].Get("uts")!.Path, "hostname"));
        }

        Parallel.ForEach(results, new ParallelOptions { MaxDegreeOfParallelism = 32 }, r =>
        {
            foreach (var p in r.Pins)
            {
                p.Remove();
            }
        });
        Assert.Empty(TestHost.MountsUnder(tmp.Path));
        Assert.Empty(PinnedNamespace.List(tmp.Path));
    }
}
