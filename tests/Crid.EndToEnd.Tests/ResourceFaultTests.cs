using System.Diagnostics;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// The host refuses what a Run needs: the state dir is read-only or full, the namespaces dir is a
/// file, a /proc/sys knob does not exist. Each gets a clear status and a complete rollback.
/// The choice of codes: a host fault is Unknown with the step and the errno in the message, as
/// containerd and cri-o answer runtime failures (Internal is kept for crid's own bugs); a sysctl the
/// kernel does not have is the request's fault, InvalidArgument.
/// </summary>
public sealed class ResourceFaultTests
{
    [Fact]
    public async Task A_read_only_state_dir_is_Unknown_and_rolls_back()
    {
        await using var d = await DaemonProcess.StartAsync();
        var sandboxes = Path.Combine(d.StateDir, "sandboxes");
        // Root ignores file modes: only a read-only mount really refuses its writes.
        Sh("mount", "--bind", sandboxes, sandboxes);
        try
        {
            Sh("mount", "-o", "remount,bind,ro", sandboxes);
            await AssertRunFailsCleanlyAsync(d, "ro", StatusCode.Unknown, "Read-only file system");
        }
        finally
        {
            Sh("umount", sandboxes);
        }
        await AssertNameFreeAsync(d, "ro");
    }

    [Fact]
    public async Task A_full_state_dir_is_Unknown_and_rolls_back()
    {
        await using var d = await DaemonProcess.StartAsync();
        var sandboxes = Path.Combine(d.StateDir, "sandboxes");
        Sh("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", sandboxes);
        try
        {
            var filler = Path.Combine(sandboxes, "filler");
            try
            {
                using var f = File.OpenWrite(filler);
                var block = new byte[4096];
                while (true)
                {
                    f.Write(block);
                    f.Flush(flushToDisk: true);
                }
            }
            catch (IOException)
            {
                // Full.
            }
            await AssertRunFailsCleanlyAsync(d, "full", StatusCode.Unknown, "No space left on device", ignore: "filler");
            File.Delete(filler);
        }
        finally
        {
            Sh("umount", sandboxes);
        }
        await AssertNameFreeAsync(d, "full");
    }

    [Fact]
    public async Task A_namespaces_dir_that_is_a_file_is_Unknown_and_rolls_back()
    {
        await using var d = await DaemonProcess.StartAsync();
        Directory.Delete(d.NamespacesDir, recursive: true);
        File.WriteAllText(d.NamespacesDir, "not a folder");
        try
        {
            await AssertRunFailsCleanlyAsync(d, "nsfile", StatusCode.Unknown, "ENOTDIR");
        }
        finally
        {
            File.Delete(d.NamespacesDir);
            Directory.CreateDirectory(d.NamespacesDir);
        }
        await AssertNameFreeAsync(d, "nsfile");
    }

    [Fact]
    public async Task A_missing_proc_sys_knob_is_InvalidArgument_and_rolls_back()
    {
        await using var d = await DaemonProcess.StartAsync();
        // Valid in form and namespaced, but no such interface exists in a new network namespace.
        await AssertRunFailsCleanlyAsync(d, "knob", StatusCode.InvalidArgument, "nosuch0",
            sysctl: ("net.ipv4.conf.nosuch0.forwarding", "1"));
        await AssertNameFreeAsync(d, "knob");
    }

    private static async Task AssertRunFailsCleanlyAsync(DaemonProcess d, string name, StatusCode code, string detail,
        string? ignore = null, (string Name, string Value)? sysctl = null)
    {
        // pid POD: the rollback has an infra process to kill as well.
        var config = SandboxTests.Minimal(name, NamespaceMode.Pod);
        if (sysctl is { } s)
            config.Linux.Sysctls[s.Name] = s.Value;
        var e = await Assert.ThrowsAsync<RpcException>(() => d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }).ResponseAsync);
        Assert.True(e.StatusCode == code, $"expected {code}, got {e.StatusCode}: {e.Status.Detail}");
        Assert.Contains(detail, e.Status.Detail);
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
        Assert.Empty(Leaks.PinFiles(d.NamespacesDir));
        Assert.Equal(ignore is null ? [] : [ignore], Leaks.Tree(Path.Combine(d.StateDir, "sandboxes")));
        Assert.Empty(await Leaks.ReservedNamesAsync(d));
        Assert.Empty(Leaks.ChildrenOf(d.Process.Id));
        Assert.DoesNotContain("failed unexpectedly", d.Stderr);
    }

    private static async Task AssertNameFreeAsync(DaemonProcess d, string name)
    {
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal(name) })).PodSandboxId;
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
    }

    internal static void Sh(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var error = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)}: {error}");
    }
}
