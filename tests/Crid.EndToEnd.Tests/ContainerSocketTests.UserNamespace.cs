using Crid.Images.Tests.Support;
using System.Text.RegularExpressions;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// Containers in a pod with its own user namespace (kubelet's hostUsers: false), over the real
/// daemon's socket: the image's layers id-mapped, the pod's files, a non-root user, pid POD and
/// pid CONTAINER, a failed create, a SIGKILLed daemon, and nothing left behind.
/// </summary>
public sealed partial class ContainerSocketTests
{
    private const string VolumeImage = "registry.example.invalid/e2e/volume:1.0";

    private static readonly IDMapping PodMapping = new() { ContainerId = 0, HostId = 100000, Length = 65536 };

    private static PodSandboxConfig UsernsPod(DaemonProcess d, string name, NamespaceMode pid)
    {
        var config = Pod(d, name, pid);
        config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { PodMapping }, Gids = { PodMapping } };
        return config;
    }

    /// <summary>As kubelet sends it: the pod's namespace options (user namespace included), the container's pid mode.</summary>
    private static ContainerConfig InUsernsPod(PodSandboxConfig pod, ContainerConfig config, NamespaceMode pid)
    {
        var ns = pod.Linux.SecurityContext.NamespaceOptions.Clone();
        ns.Pid = pid;
        config.Linux.SecurityContext = new LinuxContainerSecurityContext { NamespaceOptions = ns };
        return config;
    }

    private static int PidOf(ContainerStatusResponse status) =>
        int.Parse(Regex.Match(status.Info["info"], "\"pid\":\\s*(\\d+)").Groups[1].Value);

    private static string HostIds(int pid, string key) =>
        string.Join(' ', File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith(key + ":", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1..]);

    /// <summary>Id-mapped mounts of anything under <paramref name="dir"/> (a clone's root names its source folder), attached anywhere.</summary>
    private static int IdMappedMounts(string dir) =>
        File.ReadLines("/proc/self/mountinfo").Count(l => l.Contains("idmapped", StringComparison.Ordinal) && l.Contains(dir, StringComparison.Ordinal));

    [Fact]
    public async Task In_a_user_namespaced_pod_containers_see_the_image_as_its_owners_made_it_and_leave_nothing()
    {
        var (registry, d, _) = await StartAsync();
        await using var _r = registry;
        await using var _d = d;
        // An image that declares a volume: the daemon makes its host folder, the pod's root must own it.
        await registry.PushAsync(TestImage.Build([TestImage.Layer(new TarBuilder().Busybox().Build())], volumes: ["/data"]), "e2e/volume:1.0");
        await d.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = VolumeImage } });
        // The pod's root (host uid 100000) passes through every folder down to the rootfs, as it
        // would through /var/lib: temporary folders are made 0700, the daemon's own are searchable.
        File.SetUnixFileMode(d.Dir, (UnixFileMode)0x1c9 /* 0711 */);
        // rslave needs a propagating source: a bind mount of the folder onto itself, made rshared.
        var propagating = Directory.CreateDirectory(Path.Combine(d.Dir, "propagating")).FullName;
        Sh($"mount --bind {propagating} {propagating} && mount --make-rshared {propagating}");
        try
        {
            await UserNamespaceContainersAsync(d, propagating);
        }
        finally
        {
            // A failed test must not leave its mounts on the machine.
            foreach (var m in Cleanup.MountsUnder(d.Dir).Where(m => m == propagating || m.StartsWith(propagating + "/", StringComparison.Ordinal)).OrderByDescending(m => m.Length))
                Sh($"umount -l {m}");
        }
    }

    private static async Task UserNamespaceContainersAsync(DaemonProcess d, string propagating)
    {
        // kubelet's files: /etc/hosts (0644) and the termination log (0666) of the pod's folder.
        var kubelet = Directory.CreateDirectory(Path.Combine(d.Dir, "kubelet")).FullName;
        File.SetUnixFileMode(kubelet, (UnixFileMode)0x1ed);
        var hosts = Path.Combine(kubelet, "etc-hosts");
        await File.WriteAllTextAsync(hosts, "127.0.0.1 localhost\n10.1.2.3 userns-pod\n");
        File.SetUnixFileMode(hosts, (UnixFileMode)0x1a4);
        var termination = Path.Combine(kubelet, "termination-log");
        await File.WriteAllTextAsync(termination, "");
        File.SetUnixFileMode(termination, (UnixFileMode)0x1b6);

        // pid POD: the infra is PID 1 of the container's pid namespace.
        var podConfig = UsernsPod(d, "userns", NamespaceMode.Pod);
        var pod = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = podConfig })).PodSandboxId;
        var main = InUsernsPod(podConfig, Shell("main", "echo started; exec sleep 1000"), NamespaceMode.Pod);
        main.Mounts.Add(new Mount { HostPath = hosts, ContainerPath = "/etc/hosts" });
        main.Mounts.Add(new Mount { HostPath = termination, ContainerPath = "/dev/termination-log" });
        main.Mounts.Add(new Mount { HostPath = propagating, ContainerPath = "/slave", Propagation = MountPropagation.PropagationHostToContainer });
        var a = await RunAsync(d, pod, podConfig, main);

        Assert.Contains("pause", await ExecAsync(d, a, "cat /proc/1/cmdline"));
        Assert.Equal("0 100000 65536", await WordsAsync(d, a, "cat /proc/self/uid_map"));
        Assert.Equal("0 100000 65536", await WordsAsync(d, a, "cat /proc/self/gid_map"));
        // The image's files as the image made them (root's), not nobody's.
        Assert.Equal("0:0 0:0 0:0", await WordsAsync(d, a, "stat -c %u:%g /bin/busybox /etc/passwd /"));
        Assert.Equal("0 0", await WordsAsync(d, a, "echo $(id -u) $(id -g)"));
        Assert.Equal("0:0 written", await WordsAsync(d, a, "echo written > /new && stat -c %u:%g /new && cat /new"));
        Assert.Equal("changed", await WordsAsync(d, a, "echo changed > /etc/passwd && cat /etc/passwd"));
        // On the host the container's files are the pod root's: the writable layer holds them.
        var process = PidOf(await StatusAsync(d, a, verbose: true));
        Assert.Equal("100000 100000 100000 100000", HostIds(process, "Uid"));
        var upper = Path.Combine(d.StateDir, "containers", a, "upper");
        Assert.Equal("100000:100000", Stat(Path.Combine(upper, "new")));
        Assert.Equal("100000:100000", Stat(Path.Combine(upper, "etc", "passwd")));
        // The pod's files and kubelet's are the container's to read and write, as without a user namespace.
        Assert.Contains("10.1.2.3 userns-pod", await ExecAsync(d, a, "cat /etc/hosts"));
        await ExecAsync(d, a, "echo 'it ended' > /dev/termination-log");
        Assert.Equal("it ended\n", await File.ReadAllTextAsync(termination));
        Assert.Equal("renamed", await WordsAsync(d, a, "echo renamed > /etc/hostname && cat /etc/hostname"));
        Assert.Contains("nameserver", await ExecAsync(d, a, "cat /etc/resolv.conf; echo nameserver >> /etc/resolv.conf"));
        Assert.Equal("0:0 inpodshm", await WordsAsync(d, a, "echo inpodshm > /dev/shm/f && stat -c %u:%g /dev/shm && cat /dev/shm/f"));
        // A mount made on the host after the start reaches the container through rslave.
        Directory.CreateDirectory(Path.Combine(propagating, "late"));
        Sh($"mount -t tmpfs -o size=1m late {propagating}/late && echo propagated > {propagating}/late/file");
        Assert.Equal("propagated", await WordsAsync(d, a, "cat /slave/late/file"));
        Assert.Contains(await File.ReadAllLinesAsync(Path.Combine(podConfig.LogDirectory, "main.log")), l => l.EndsWith(" stdout F started", StringComparison.Ordinal));

        // A non-root user of the spec runs as its mapped host uid, and still sees the image as root's.
        var user = InUsernsPod(podConfig, Shell("user", "exec sleep 1000"), NamespaceMode.Pod);
        user.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1000 };
        var b = await RunAsync(d, pod, podConfig, user);
        Assert.Equal("1000 0:0", await WordsAsync(d, b, "echo $(id -u) $(stat -c %u:%g /bin/busybox)"));
        Assert.Equal("1000:0", await WordsAsync(d, b, "echo x > /tmp/mine && stat -c %u:%g /tmp/mine"));
        Assert.NotEqual(0, (await d.Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = b, Cmd = { "/bin/sh", "-c", "echo x > /etc/group" }, Timeout = 10 })).ExitCode);
        Assert.Equal("inpodshm", await WordsAsync(d, b, "cat /dev/shm/f"));
        Assert.Equal("101000 101000 101000 101000", HostIds(PidOf(await StatusAsync(d, b, verbose: true)), "Uid"));

        // The image's volume is the container's to write, as root.
        var volume = InUsernsPod(podConfig, Shell("volume", "exec sleep 1000"), NamespaceMode.Pod);
        volume.Image = new ImageSpec { Image = VolumeImage };
        var v = await RunAsync(d, pod, podConfig, volume);
        Assert.Equal("0:0 0:0 kept", await WordsAsync(d, v, "stat -c %u:%g /data; echo kept > /data/f && stat -c %u:%g /data/f && cat /data/f"));
        await d.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = v, Timeout = 0 });
        await d.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = v });

        // pid CONTAINER in the same pod: a pid namespace of its own, the pod's user namespace.
        var own = await RunAsync(d, pod, podConfig, InUsernsPod(podConfig, Shell("own", "exec sleep 1000"), NamespaceMode.Container));
        Assert.Equal("sleep 1000", await WordsAsync(d, own, "cat /proc/1/cmdline | busybox tr '\\0' ' ' | busybox sed 's/ $//'"));
        Assert.Equal("0 100000 65536", await WordsAsync(d, own, "cat /proc/self/uid_map"));
        Assert.Equal(await ExecAsync(d, a, "busybox readlink /proc/self/ns/user"), await ExecAsync(d, own, "busybox readlink /proc/self/ns/user"));
        Assert.Equal("0:0", await WordsAsync(d, own, "stat -c %u:%g /bin/busybox"));

        // A create that fails after its rootfs was mounted (runc finds no such command) leaves nothing.
        var broken = InUsernsPod(podConfig, Shell("broken", "true"), NamespaceMode.Pod);
        broken.Command.Clear();
        broken.Command.Add("/no/such/command");
        await Assert.ThrowsAsync<RpcException>(async () => await d.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod, Config = broken, SandboxConfig = podConfig }));
        Assert.Equal(3, Directory.EnumerateDirectories(Path.Combine(d.StateDir, "containers")).Count());
        Assert.Equal(3, Cleanup.MountsUnder(d.StateDir, "overlay").Count);
        // The id-mapped layers are never attached anywhere: only the overlay holds them.
        Assert.Equal(0, IdMappedMounts(d.Dir));

        // SIGKILLed and restarted, the daemon finds its userns containers running and whole.
        await d.KillAsync();
        await d.RestartAsync();
        Assert.Equal(ContainerState.ContainerRunning, (await StatusAsync(d, a)).Status.State);
        Assert.Equal("written", await WordsAsync(d, a, "cat /new"));
        Assert.Equal(process, PidOf(await StatusAsync(d, a, verbose: true)));

        // A pod with pid CONTAINER and a user namespace.
        var soloConfig = UsernsPod(d, "usernssolo", NamespaceMode.Container);
        var solo = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = soloConfig })).PodSandboxId;
        var c = await RunAsync(d, solo, soloConfig, InUsernsPod(soloConfig, Shell("solo", "exec sleep 1000"), NamespaceMode.Container));
        Assert.Equal("sleep 1000", await WordsAsync(d, c, "cat /proc/1/cmdline | busybox tr '\\0' ' ' | busybox sed 's/ $//'"));
        Assert.Equal("0 100000 65536", await WordsAsync(d, c, "cat /proc/self/uid_map"));
        Assert.Equal("0:0 solo", await WordsAsync(d, c, "stat -c %u:%g /bin/busybox; echo solo > /f && cat /f"));

        // Stop and remove: nothing is left, not even an id-mapped mount outside the daemon's folders.
        await d.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = b, Timeout = 0 });
        await d.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = b });
        Assert.Empty(Cleanup.MountsUnder(Path.Combine(d.StateDir, "containers", b)));
        foreach (var p in new[] { pod, solo })
        {
            await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = p });
            await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = p });
        }
        Sh($"umount {propagating}/late && umount {propagating}");
        Assert.Empty(Leftovers(d));
        Assert.DoesNotContain(File.ReadLines("/proc/self/mountinfo"), l => l.Contains(d.Dir, StringComparison.Ordinal));
        Assert.Equal(0, IdMappedMounts(d.Dir));
    }

    /// <summary>The output's words, one space apart (busybox's tools end lines and pad columns their own way).</summary>
    private static string Words(string output) => Regex.Replace(output.Trim(), @"\s+", " ");

    private static async Task<string> WordsAsync(DaemonProcess d, string id, string script) => Words(await ExecAsync(d, id, script));

    private static string Stat(string path) => SandboxTests.Nsenter("--", "stat", "-c", "%u:%g", path).Trim();
}
