using Crid.Linux;

namespace Crid.Linux.Tests;

public class InfraProcessTests
{
    private static InfraRequest Sleep(string dir, string uuid) => new()
    {
        NamespacesDir = dir,
        Uuid = uuid,
        Executable = "/bin/sleep",
        Args = ["sleep", "infinity"],
    };

    private static string NsPid(int pid) => File.ReadLines($"/proc/{pid}/status")
        .First(l => l.StartsWith("NSpid:", StringComparison.Ordinal))["NSpid:".Length..].Trim();

    [Fact]
    public void Infra_is_pid_1_of_a_pinned_pid_namespace_and_dies_with_kill()
    {
        using var tmp = new TempNsDir();
        string uuid = Guid.NewGuid().ToString("D");
        var infra = InfraProcess.Start(Sleep(tmp.Path, uuid));
        try
        {
            string[] nspid = NsPid(infra.Pid).Split('\t', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal([infra.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "1"], nspid);
            Assert.Equal(Path.Combine(tmp.Path, "pidns", uuid), infra.Pin.Path);
            Assert.Equal("pid", infra.Pin.Type);
            Assert.True(infra.Pin.IsMounted);
            Assert.Equal(TestHost.Inode($"/proc/{infra.Pid}/ns/pid"), infra.Pin.Inode);
            Assert.NotEqual(TestHost.Inode("/proc/self/ns/pid"), infra.Pin.Inode);

            // Default dispositions, empty mask, /dev/null stdio, own session.
            string status = File.ReadAllText($"/proc/{infra.Pid}/status");
            Assert.Contains("SigBlk:\t0000000000000000", status, StringComparison.Ordinal);
            Assert.Contains("SigCgt:\t0000000000000000", status, StringComparison.Ordinal);
            Assert.Equal("/dev/null", new FileInfo($"/proc/{infra.Pid}/fd/1").LinkTarget);
            string stat = File.ReadAllText($"/proc/{infra.Pid}/stat");
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            Assert.Equal(infra.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), fields[3]); // session id

            // pid_namespaces(7): init ignores signals it has no handler for, from the host as well.
            TestHost.Ok("kill", "-TERM", infra.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Thread.Sleep(100);
            Assert.True(Directory.Exists($"/proc/{infra.Pid}"));
            Assert.DoesNotContain("State:\tZ", File.ReadAllText($"/proc/{infra.Pid}/status"), StringComparison.Ordinal);
        }
        finally
        {
            InfraProcess.Kill(infra.Pid, infra.Pin.Path);
        }

        Assert.False(Directory.Exists($"/proc/{infra.Pid}"));
        Assert.False(File.Exists(infra.Pin.Path));
        Assert.DoesNotContain(infra.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), HygieneTests.Children());

        // Idempotent.
        InfraProcess.Kill(infra.Pid, infra.Pin.Path);
    }

    [Fact]
    public void Infra_joins_the_pods_namespaces()
    {
        using var tmp = new TempNsDir();
        var pod = PodNamespaces.Create(new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("net", false), new("ipc", false), new("uts", false)],
            Hostname = "infra-pod",
        });
        InfraHandle? infra = null;
        try
        {
            infra = InfraProcess.Start(Sleep(tmp.Path, pod.Uuid) with
            {
                NetNsPath = pod.Get("net")!.Path,
                IpcNsPath = pod.Get("ipc")!.Path,
                UtsNsPath = pod.Get("uts")!.Path,
            });
            foreach (string type in new[] { "net", "ipc", "uts" })
            {
                Assert.Equal(pod.Get(type)!.Inode, TestHost.Inode($"/proc/{infra.Pid}/ns/{type}"));
            }

            Assert.Equal(Path.Combine(tmp.Path, "pidns", pod.Uuid), infra.Pin.Path);
            Assert.Equal("infra-pod", TestHost.Ok("nsenter", "-t", infra.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "--uts", "hostname"));
        }
        finally
        {
            if (infra is not null)
            {
                InfraProcess.Kill(infra.Pid, infra.Pin.Path);
            }

            foreach (var pin in pod.Pins)
            {
                pin.Remove();
            }
        }
    }

    [Fact]
    public void In_a_user_namespaced_pod_the_pid_namespace_is_owned_by_the_pods_user_namespace_and_the_infra_is_its_root()
    {
        using var tmp = new TempNsDir();
        var map = new[] { new IdMapping(0, 100000, 65536) };
        var pod = PodNamespaces.Create(new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("user", false), new("net", false), new("ipc", false), new("uts", false)],
            UidMappings = map,
            GidMappings = map,
            Hostname = "userns-infra",
        });
        InfraHandle? infra = null;
        try
        {
            var user = pod.Get("user")!;
            infra = InfraProcess.Start(Sleep(tmp.Path, pod.Uuid) with
            {
                NetNsPath = pod.Get("net")!.Path,
                IpcNsPath = pod.Get("ipc")!.Path,
                UtsNsPath = pod.Get("uts")!.Path,
                UserNsPath = user.Path,
            });
            string pid = infra.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal([pid, "1"], NsPid(infra.Pid).Split('\t', StringSplitOptions.RemoveEmptyEntries));
            foreach (string type in new[] { "net", "ipc", "uts", "user" })
            {
                Assert.Equal(pod.Get(type)!.Inode, TestHost.Inode($"/proc/{infra.Pid}/ns/{type}"));
            }

            // ioctl_ns(2) NS_GET_USERNS on the pin: the pid namespace belongs to the pod's user namespace.
            Assert.Equal(user.Inode, NsTestInterop.OwnerUserNsInode(infra.Pin.Path));
            Assert.Equal(infra.Pin.Inode, TestHost.Inode($"/proc/{infra.Pid}/ns/pid"));

            // The pod's root: host uid/gid 100000, no supplementary groups; the pin is its, as the pod's others are.
            string status = File.ReadAllText($"/proc/{infra.Pid}/status");
            Assert.Contains("Uid:\t100000\t100000\t100000\t100000", status, StringComparison.Ordinal);
            Assert.Contains("Gid:\t100000\t100000\t100000\t100000", status, StringComparison.Ordinal);
            Assert.Matches(@"Groups:\s*\n", status);
            Assert.Contains("SigBlk:\t0000000000000000", status, StringComparison.Ordinal);
            Assert.Contains("SigCgt:\t0000000000000000", status, StringComparison.Ordinal);
            Assert.Equal("/dev/null", new FileInfo($"/proc/{infra.Pid}/fd/1").LinkTarget);
            Assert.Equal(["0", "1", "2"], Directory.GetFileSystemEntries($"/proc/{infra.Pid}/fd").Select(Path.GetFileName).Order());
            Assert.Equal(TestHost.Ok("stat", "-c", "%u:%g", user.Path), TestHost.Ok("stat", "-c", "%u:%g", infra.Pin.Path));

            // The daemon is its parent, as for any other infra (reaped by us, not left to init).
            string stat = File.ReadAllText($"/proc/{infra.Pid}/stat");
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            Assert.Equal(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), fields[1]);
            Assert.Equal(pid, fields[3]); // session id
        }
        finally
        {
            if (infra is not null)
            {
                InfraProcess.Kill(infra.Pid, infra.Pin.Path);
            }

            foreach (var pin in Enumerable.Reverse(pod.Pins))
            {
                pin.Remove();
            }
        }

        Assert.False(Directory.Exists($"/proc/{infra!.Pid}"));
        Assert.False(File.Exists(infra.Pin.Path));
        Assert.DoesNotContain(infra.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), HygieneTests.Children());
    }

    [Fact]
    public void A_user_namespace_that_cannot_be_joined_fails_naming_it_and_leaves_nothing()
    {
        using var tmp = new TempNsDir();
        var childrenBefore = HygieneTests.Children();

        // A net namespace is no user namespace: setns(CLONE_NEWUSER) in the joiner is EINVAL.
        var e = Assert.Throws<SyscallException>(() => InfraProcess.Start(Sleep(tmp.Path, Guid.NewGuid().ToString("D")) with { UserNsPath = "/proc/self/ns/net" }));
        Assert.Equal("setns", e.Syscall);
        Assert.Equal("user", e.NamespaceType);
        Assert.Equal("EINVAL", e.ErrnoName);
        Assert.Contains("/proc/self/ns/net", e.Message, StringComparison.Ordinal);

        var missing = Assert.Throws<SyscallException>(() => InfraProcess.Start(Sleep(tmp.Path, Guid.NewGuid().ToString("D")) with { UserNsPath = "/proc/self/ns/user", Executable = "/nonexistent/pause" }));
        Assert.Equal("ENOENT", missing.ErrnoName);

        Assert.Empty(Directory.GetFiles(Path.Combine(tmp.Path, "pidns")));
        Assert.Equal(childrenBefore.Order(), HygieneTests.Children().Order());
    }

    [Fact]
    public void Kill_spares_a_process_that_is_not_the_pinned_init()
    {
        using var tmp = new TempNsDir();
        var infra = InfraProcess.Start(Sleep(tmp.Path, Guid.NewGuid().ToString("D")));
        using var stranger = System.Diagnostics.Process.Start("/bin/sleep", "30");
        try
        {
            // As after a restart with a reused pid: the pid does not belong to the pinned namespace.
            InfraProcess.Kill(stranger.Id, infra.Pin.Path);
            Assert.False(stranger.HasExited);
            Assert.False(File.Exists(infra.Pin.Path));
        }
        finally
        {
            stranger.Kill();
            stranger.WaitForExit();
            InfraProcess.Kill(infra.Pid, infra.Pin.Path);
            HelperChild.KillAndReap(infra.Pid);
        }
    }

    [Fact]
    public void Missing_executable_is_an_error_and_leaves_nothing()
    {
        using var tmp = new TempNsDir();
        var e = Assert.Throws<SyscallException>(() => InfraProcess.Start(Sleep(tmp.Path, Guid.NewGuid().ToString("D")) with { Executable = "/nonexistent/pause" }));
        Assert.Equal("ENOENT", e.ErrnoName);
        Assert.Empty(Directory.GetFiles(Path.Combine(tmp.Path, "pidns")));
    }

    [Fact]
    public void Many_infra_processes_in_parallel()
    {
        using var tmp = new TempNsDir();
        var handles = new InfraHandle[16];
        Parallel.For(0, 16, i => handles[i] = InfraProcess.Start(Sleep(tmp.Path, Guid.NewGuid().ToString("D"))));
        Assert.Equal(16, handles.Select(h => h.Pin.Inode).Distinct().Count());
        Parallel.ForEach(handles, h => InfraProcess.Kill(h.Pid, h.Pin.Path));
        Assert.All(handles, h => Assert.False(Directory.Exists($"/proc/{h.Pid}")));
    }
}
