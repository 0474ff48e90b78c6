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
