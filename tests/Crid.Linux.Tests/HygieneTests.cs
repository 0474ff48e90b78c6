using Crid.Linux;

namespace Crid.Linux.Tests;

/// <summary>No thread left in a pod's namespaces, no helper child left behind.</summary>
public class HygieneTests
{
    private static readonly string[] NsTypes = ["net", "ipc", "uts", "user", "mnt", "pid"];

    private static Dictionary<string, string> ThreadNamespaces()
    {
        var result = new Dictionary<string, string>();
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                result[Path.GetFileName(task)] = string.Join(' ', NsTypes.Select(t => new FileInfo($"{task}/ns/{t}").LinkTarget));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The thread ended while we looked.
            }
        }

        return result;
    }

    /// <summary>Children (live or zombie) of every thread of this process.</summary>
    internal static HashSet<string> Children()
    {
        var result = new HashSet<string>();
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                result.UnionWith(File.ReadAllText(task + "/children").Split(' ', StringSplitOptions.RemoveEmptyEntries));
            }
            catch (IOException)
            {
            }
        }

        return result;
    }

    [Fact]
    public async Task Threads_stay_home_and_no_child_survives_200_cycles()
    {
        using var tmp = new TempNsDir();
        string home = string.Join(' ', NsTypes.Select(t => new FileInfo($"/proc/self/ns/{t}").LinkTarget));
        var before = ThreadNamespaces();
        var childrenBefore = Children();
        Assert.All(before.Values, v => Assert.Equal(home, v));

        var request = new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("net", false), new("ipc", false), new("uts", false)],
            Sysctls = new Dictionary<string, string> { ["net.core.somaxconn"] = "1000", ["kernel.msgmax"] = "9000" },
            LoopbackUp = true,
            Hostname = "hygiene",
        };
        foreach (var pin in PodNamespaces.Create(request).Pins)
        {
            pin.Remove(); // warm-up: workers start and open their home fds once
        }

        int fdsBefore = Directory.GetFiles("/proc/self/fd").Length;
        for (int i = 0; i < 200; i++)
        {
            // From thread-pool threads too: the namespace work must still land on dedicated threads.
            var r = i % 2 == 0 ? PodNamespaces.Create(request) : await Task.Run(() => PodNamespaces.Create(request));
            foreach (var pin in r.Pins)
            {
                pin.Remove();
            }
        }

        // Infra spawns unshare a pid namespace on a thread of their own, which must then be gone.
        for (int i = 0; i < 5; i++)
        {
            var infra = InfraProcess.Start(new InfraRequest
            {
                NamespacesDir = tmp.Path,
                Uuid = Guid.NewGuid().ToString("D"),
                Executable = "/bin/sleep",
                Args = ["sleep", "infinity"],
            });
            InfraProcess.Kill(infra.Pid, infra.Pin.Path);
        }

        // A failing configure must bring its worker home too.
        Assert.Throws<SyscallException>(() => PodNamespaces.Create(request with { Sysctls = new Dictionary<string, string> { ["net.core.somaxconn"] = "-1" } }));

        var after = ThreadNamespaces();
        foreach (var (tid, ns) in after)
        {
            Assert.True(ns == home, $"thread {tid} is in {ns}, not {home}");
        }

        foreach (var (tid, ns) in before)
        {
            if (after.TryGetValue(tid, out string? now))
            {
                Assert.Equal(ns, now);
            }
        }

        Assert.Equal(childrenBefore.Order(), Children().Order());

        // A leak of one fd per call would show as hundreds; the slack is for the test host.
        Assert.InRange(Directory.GetFiles("/proc/self/fd").Length, 0, fdsBefore + 4);
    }

    [Fact]
    public void Failed_calls_leave_no_child()
    {
        using var tmp = new TempNsDir();
        var childrenBefore = Children();
        for (int i = 0; i < 5; i++)
        {
            Assert.Throws<SyscallException>(() => PodNamespaces.Create(new PodNamespacesRequest
            {
                NamespacesDir = tmp.Path,
                Namespaces = [new("net", false)],
                Sysctls = new Dictionary<string, string> { ["net.core.nope"] = "1" },
            }));
        }

        Assert.Equal(childrenBefore.Order(), Children().Order());
    }

    [Fact]
    public void Per_call_threads_work_too()
    {
        using var tmp = new TempNsDir();
        int threadsBefore = Directory.GetDirectories("/proc/self/task").Length;
        var r = PodNamespaces.Create(new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("net", false), new("uts", false)],
            LoopbackUp = true,
            Hostname = "once",
        }, new PodNamespacesOptions { UseWorkers = false });
        Assert.Equal("once", TestHost.Ok("nsenter", "--uts=" + r.Get("uts")!.Path, "hostname"));
        foreach (var pin in r.Pins)
        {
            pin.Remove();
        }

        Assert.True(Directory.GetDirectories("/proc/self/task").Length <= threadsBefore + 1);
    }

    [Fact]
    public void Helper_child_blocks_every_signal_and_dies_with_sigkill()
    {
        using var child = HelperChild.Start(Tmds.Linux.LibC.CLONE_NEWUTS, "uts");
        string status = File.ReadAllText($"/proc/{child.Pid}/status");
        Assert.Contains("SigBlk:\tfffffffe7ffbfeff", status, StringComparison.Ordinal);
        TestHost.Ok("kill", "-INT", child.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Thread.Sleep(20);
        Assert.Contains("ShdPnd:\t0000000000000002", File.ReadAllText($"/proc/{child.Pid}/status"), StringComparison.Ordinal);
        child.Dispose();
        Assert.False(Directory.Exists($"/proc/{child.Pid}"));
    }
}
