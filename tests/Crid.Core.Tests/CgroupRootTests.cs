using System.Diagnostics;
using Crid.Core.Stats;

namespace Crid.Core.Tests;

/// <summary>
/// The readers against the real kernel: a cgroup of the test's own (a random name at the top of
/// every hierarchy the reader uses, removed after), a shell in it that burns CPU and holds 64 MiB,
/// and the figures read back. Needs root, as the CI runs.
/// </summary>
public sealed class CgroupRootTests
{
    private const ulong MiB = 1 << 20;

    private static void RequireRoot() =>
        Assert.True(Environment.UserName == "root", "these tests create cgroups: run them as root (this VM and CI do)");

    /// <summary>A cgroup in every hierarchy the layout reads from; disposing kills what is in it and removes it.</summary>
    private sealed class TestCgroup : IDisposable
    {
        public TestCgroup(CgroupLayout layout)
        {
            Path = "/crid-stats-test-" + Guid.NewGuid().ToString("N")[..12];
            Dirs = layout.Resolve(Path);
            Folders = new[] { Dirs.Cpuacct, Dirs.Memory, Dirs.Pids, Dirs.Unified }.OfType<string>().Distinct().ToList();
            foreach (var f in Folders)
                Directory.CreateDirectory(f);
        }

        public string Path { get; }

        public CgroupDirs Dirs { get; }

        public List<string> Folders { get; }

        public IEnumerable<string> ProcsFiles => Folders.Select(f => System.IO.Path.Combine(f, "cgroup.procs"));

        public void Dispose()
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            foreach (var f in Folders)
            {
                while (true)
                {
                    var pids = File.Exists(System.IO.Path.Combine(f, "cgroup.procs"))
                        ? File.ReadAllLines(System.IO.Path.Combine(f, "cgroup.procs")).Where(l => l.Length > 0).ToList()
                        : [];
                    if (pids.Count == 0 || DateTime.UtcNow > deadline)
                        break;
                    foreach (var pid in pids)
                        Process.Start("kill", ["-9", pid])!.WaitForExit();
                    Thread.Sleep(20);
                }
                Directory.Delete(f);
            }
        }
    }

    [Fact]
    public async Task A_process_that_burns_cpu_and_holds_64_MiB_is_seen_in_its_cgroups_figures()
    {
        RequireRoot();
        var layout = CgroupLayout.FromHost();
        using var cgroup = new TestCgroup(layout);
        var reader = new CgroupStatsReader();
        var empty = reader.Read(cgroup.Dirs);
        Assert.Equal(0UL, empty.Processes!.Count);
        Assert.Equal(0UL, empty.Cpu!.UsageNanoseconds);

        // The shell joins the cgroup before it does anything, so everything it and its children do is charged there.
        const string script = """
            for f in "$@"; do echo $$ > "$f"; done
            i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done
            x=$(head -c 67108864 /dev/zero | tr '\0' a)
            echo ready
            sleep 60 &
            wait
            echo ${#x}
            """;
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add("sh");
        foreach (var procs in cgroup.ProcsFiles)
            psi.ArgumentList.Add(procs);
        using var shell = Process.Start(psi)!;
        try
        {
            var line = await shell.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal("ready", line);
            // The shell and its sleep.
            var deadline = DateTime.UtcNow.AddSeconds(10);
            ProcessSample? processes;
            while ((processes = reader.Processes(cgroup.Dirs))!.Count < 2 && DateTime.UtcNow < deadline)
                await Task.Delay(10);
            Assert.Equal(2UL, processes.Count);

            var before = UnixClock.Now();
            var sample = reader.Read(cgroup.Dirs);
            Assert.InRange(sample.Cpu!.Timestamp, before, UnixClock.Now());
            // The loop alone is a tenth of a second of CPU on any machine this runs on.
            Assert.True(sample.Cpu.UsageNanoseconds > 100_000_000, $"{sample.Cpu.UsageNanoseconds} ns of CPU");
            var m = sample.Memory!;
            Assert.True(m.UsageBytes >= 64 * MiB, $"usage {m.UsageBytes}");
            Assert.True(m.RssBytes >= 64 * MiB, $"rss {m.RssBytes}");
            Assert.True(m.WorkingSetBytes >= 64 * MiB && m.WorkingSetBytes <= m.UsageBytes, $"working set {m.WorkingSetBytes} of {m.UsageBytes}");
            // Touching 64 MiB of new anonymous memory faults in at least one page per 4 KiB.
            Assert.True(m.PageFaults >= 64 * MiB / 4096, $"{m.PageFaults} page faults");
            Assert.Null(m.LimitBytes);

            // A limit, written as runc would, gives the available bytes.
            var limitFile = layout.Mode == CgroupMode.Unified ? Path.Combine(cgroup.Dirs.Unified!, "memory.max") : Path.Combine(cgroup.Dirs.Memory!, "memory.limit_in_bytes");
            await File.WriteAllTextAsync(limitFile, (512 * MiB).ToString());
            var limited = reader.Memory(cgroup.Dirs)!;
            Assert.Equal(512 * MiB, limited.LimitBytes);
            Assert.Equal(512 * MiB - limited.WorkingSetBytes, limited.AvailableBytes);

            // The rate over the next second of an idle shell: next to nothing.
            var rates = new CpuRates();
            rates.Rate("t", reader.Cpu(cgroup.Dirs)!);
            await Task.Delay(1100);
            Assert.True(rates.Rate("t", reader.Cpu(cgroup.Dirs)!) < 50_000_000UL, "an idle shell used more than 5% of a core");
        }
        finally
        {
            shell.Kill(entireProcessTree: true);
            await shell.WaitForExitAsync();
        }
    }

    [Fact]
    public void Once_the_cgroup_is_removed_there_are_no_figures()
    {
        RequireRoot();
        var layout = CgroupLayout.FromHost();
        CgroupDirs dirs;
        using (var cgroup = new TestCgroup(layout))
            dirs = cgroup.Dirs;
        Assert.Equal(new CgroupSample(null, null, null), new CgroupStatsReader().Read(dirs));
    }
}
