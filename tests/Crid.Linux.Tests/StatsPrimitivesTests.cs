using System.Net;
using System.Net.Sockets;
using Crid.Linux;

namespace Crid.Linux.Tests;

/// <summary>The primitives stats are read with: /proc/net inside a pod's namespace, and the bounded layer walk.</summary>
public class StatsPrimitivesTests
{
    private static PodNamespacesRequest NetRequest(string dir) => new()
    {
        NamespacesDir = dir,
        Namespaces = [new NamespaceRequest("net", Host: false)],
        LoopbackUp = true,
    };

    /// <summary>"name: rx_bytes ... tx_bytes ..." of one interface in /proc/net/dev text.</summary>
    private static (ulong Rx, ulong Tx)? Counters(string netDev, string name)
    {
        foreach (var line in netDev.Split('\n'))
        {
            var colon = line.IndexOf(':');
            if (colon > 0 && line[..colon].Trim() == name)
            {
                var f = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return (ulong.Parse(f[0]), ulong.Parse(f[8]));
            }
        }
        return null;
    }

    [Fact]
    public async Task Proc_net_dev_is_read_inside_the_pods_namespace_and_the_caller_never_enters_it()
    {
        using var tmp = new TempNsDir();
        var pod = PodNamespaces.Create(NetRequest(tmp.Path));
        var pin = pod.Get("net")!.Path;
        try
        {
            // A veth pair wholly inside the pod (no host-side name to collide), and a static neighbour
            // so datagrams leave through eth0 without ARP: what is sent is counted by eth0 alone.
            TestHost.Ok("nsenter", "--net=" + pin, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0");
            TestHost.Ok("nsenter", "--net=" + pin, "ip", "addr", "add", "10.254.77.1/24", "dev", "eth0");
            TestHost.Ok("nsenter", "--net=" + pin, "ip", "link", "set", "peer0", "up");
            TestHost.Ok("nsenter", "--net=" + pin, "ip", "link", "set", "eth0", "up");
            TestHost.Ok("nsenter", "--net=" + pin, "ip", "neigh", "add", "10.254.77.2", "lladdr", "02:00:00:00:00:02", "dev", "eth0");
            // Counters start near zero: IPv6 may already have sent a solicitation on the new link (90 bytes each).
            var before = await NetNamespaceFiles.ReadProcNetAsync(pin, "dev");
            var (_, tx0) = Counters(before, "eth0")!.Value;
            Assert.InRange(tx0, 0UL, 1_000UL);

            Socket? udp = null;
            await NamespaceThreads.RunAsync([pin, null, null], () => udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
            using (udp)
            {
                for (var i = 0; i < 10; i++)
                    udp!.SendTo(new byte[1000], new IPEndPoint(IPAddress.Parse("10.254.77.2"), 9));
            }
            var hostThread = await File.ReadAllTextAsync("/proc/thread-self/net/dev");
            var after = await NetNamespaceFiles.ReadProcNetAsync(pin, "dev");
            var (_, txTotal) = Counters(after, "eth0")!.Value;
            var tx = txTotal - tx0;
            // Ten datagrams of 1000 bytes plus their IP, UDP and Ethernet headers (and whatever IPv6
            // sends by itself on a new link: a router solicitation or two).
            Assert.InRange(tx, 10_000UL, 12_000UL);
            Assert.Equal(txTotal, Counters(after, "peer0")!.Value.Rx);
            Assert.Null(Counters(after, "ifb0"));
            // The caller's thread is still in the host's namespace.
            Assert.Equal(TestHost.Inode("/proc/self/ns/net"), TestHost.Inode("/proc/thread-self/ns/net"));
            Assert.NotEqual(txTotal, Counters(hostThread, "eth0")?.Tx);
        }
        finally
        {
            foreach (var p in pod.Pins)
                p.Remove();
        }
    }

    [Fact]
    public async Task A_namespace_that_is_gone_is_an_error_naming_it()
    {
        var e = await Assert.ThrowsAsync<SyscallException>(() => NetNamespaceFiles.ReadProcNetAsync("/nonexistent/netns/x", "dev"));
        Assert.Contains("/nonexistent/netns/x", e.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => NetNamespaceFiles.ReadProcNetAsync("/proc/self/ns/net", "../../self/environ"));
    }

    [Fact]
    public void The_walk_counts_blocks_and_inodes_once_per_inode_and_follows_no_link()
    {
        var dir = Directory.CreateTempSubdirectory("crid-du-").FullName;
        var outside = Directory.CreateTempSubdirectory("crid-du-outside-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "a/b/c"));
            File.WriteAllBytes(Path.Combine(dir, "a/b/c/big"), new byte[1 << 20]);
            File.WriteAllBytes(Path.Combine(dir, "small"), [1]);
            TestHost.Ok("ln", Path.Combine(dir, "small"), Path.Combine(dir, "a/hardlink"));
            File.CreateSymbolicLink(Path.Combine(dir, "escape"), outside);
            File.WriteAllBytes(Path.Combine(outside, "secret"), new byte[4 << 20]);

            var usage = DirectoryUsage.Measure(dir, maxEntries: 1000, maxDepth: 10);
            // dir, a, b, c, big, small (and its second name), the link: 7 inodes.
            Assert.Equal(7UL, usage.Inodes);
            var du = ulong.Parse(TestHost.Ok("du", "-s", "-B1", "-x", dir).Split('\t')[0]);
            Assert.Equal(du, usage.Bytes);
            Assert.InRange(usage.Bytes, 1UL << 20, 2UL << 20);
            Assert.False(usage.Truncated);

            // The bounds: entries and depth, each saying the figures are short.
            var shallow = DirectoryUsage.Measure(dir, maxEntries: 1000, maxDepth: 1);
            Assert.True(shallow.Truncated);
            Assert.True(shallow.Bytes < usage.Bytes);
            var few = DirectoryUsage.Measure(dir, maxEntries: 2, maxDepth: 10);
            Assert.True(few.Truncated);
            Assert.True(few.Inodes <= 3);

            // The root itself is never followed when it is a link.
            Assert.Throws<IOException>(() => DirectoryUsage.Measure(Path.Combine(dir, "escape"), 10, 10));
            Assert.Throws<DirectoryNotFoundException>(() => DirectoryUsage.Measure(Path.Combine(dir, "nothing"), 10, 10));
        }
        finally
        {
            Directory.Delete(dir, true);
            Directory.Delete(outside, true);
        }
    }

    [Fact]
    public void The_walk_stays_on_the_layers_filesystem()
    {
        TestHost.RequireRoot();
        var dir = Directory.CreateTempSubdirectory("crid-du-mnt-").FullName;
        var mnt = Path.Combine(dir, "mnt");
        Directory.CreateDirectory(mnt);
        TestHost.Ok("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt);
        try
        {
            File.WriteAllBytes(Path.Combine(mnt, "elsewhere"), new byte[8 << 20]);
            var usage = DirectoryUsage.Measure(dir, 100, 10);
            // The folder alone: the tmpfs mounted on "mnt" is another filesystem, neither counted nor entered.
            Assert.Equal(1UL, usage.Inodes);
            Assert.True(usage.Bytes < 1 << 20, $"{usage.Bytes} bytes counted");
        }
        finally
        {
            TestHost.Run("umount", mnt);
            Directory.Delete(dir, true);
        }
    }
    private static string Text(RereadFile f)
    {
        var buffer = new byte[4096];
        var n = f.Read(buffer);
        return n < 0 ? "<none>" : System.Text.Encoding.ASCII.GetString(buffer, 0, n);
    }

    [Fact]
    public void A_kept_cgroup_file_reads_what_is_there_now_and_lets_go_when_its_cgroup_is_removed()
    {
        TestHost.RequireRoot();
        // pids.current in v1's pids hierarchy (this host), cgroup.events in a v2-only one: one-value files.
        var v1 = Directory.Exists("/sys/fs/cgroup/pids");
        var root = v1 ? "/sys/fs/cgroup/pids" : "/sys/fs/cgroup";
        var (file, empty, one) = v1 ? ("pids.current", "0\n", "1\n") : ("cgroup.events", "populated 0\nfrozen 0\n", "populated 1\nfrozen 0\n");
        var dir = Path.Combine(root, "crid-reread-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        using var sleeper = System.Diagnostics.Process.Start("sleep", "30");
        try
        {
            var kept = RereadFile.Kept;
            using var figure = new RereadFile(Path.Combine(dir, file));
            Assert.Equal(empty, Text(figure));
            Assert.True(figure.IsKept);
            Assert.Equal(kept + 1, RereadFile.Kept);

            // Read again through the same descriptor: the kernel makes the text afresh at offset 0.
            File.WriteAllText(Path.Combine(dir, "cgroup.procs"), sleeper.Id.ToString());
            Assert.Equal(one, Text(figure));
            Assert.True(figure.IsKept);

            // Removed: its kept descriptor's reads fail (ENODEV), it is closed, and the path is not there.
            File.WriteAllText(Path.Combine(root, "cgroup.procs"), sleeper.Id.ToString());
            Directory.Delete(dir);
            Assert.Equal("<none>", Text(figure));
            Assert.False(figure.IsKept);
            Assert.Equal(kept, RereadFile.Kept);
        }
        finally
        {
            sleeper.Kill();
            sleeper.WaitForExit();
            if (Directory.Exists(dir))
                Directory.Delete(dir);
        }
    }

    [Fact]
    public void Past_the_budget_a_file_is_read_without_keeping_its_descriptor()
    {
        var path = Path.GetTempFileName();
        var budget = RereadFile.Budget;
        try
        {
            File.WriteAllText(path, "1");
            using (var kept = new RereadFile(path))
            {
                Assert.Equal("1", Text(kept));
                Assert.True(kept.IsKept);
                // Written in place (same inode): the kept descriptor reads the new text from the start.
                File.WriteAllText(path, "22");
                Assert.Equal("22", Text(kept));
            }
            RereadFile.Budget = RereadFile.Kept;
            using var over = new RereadFile(path);
            Assert.Equal("22", Text(over));
            Assert.False(over.IsKept);
            using var missing = new RereadFile(path + ".none");
            Assert.Equal("<none>", Text(missing));
            Assert.False(missing.IsKept);
        }
        finally
        {
            RereadFile.Budget = budget;
            File.Delete(path);
        }
    }
}
