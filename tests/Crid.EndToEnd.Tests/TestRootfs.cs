using System.Diagnostics;
using Crid.Core.Images;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// A container root filesystem made of Debian's static busybox, shaped like the busybox image:
/// applets are hard links to one binary (so masking /bin/ls masks ls alone, not busybox), and
/// /etc/passwd and /etc/group hold the accounts critest's images have.
/// </summary>
internal static class TestRootfs
{
    /// <summary>An image that gives nothing of its own: the config decides everything.</summary>
    public static ContainerImage Image { get; } = new()
    {
        Id = "sha256:" + new string('0', 64),
        RepoTags = ["docker.io/library/busybox:latest"],
        RepoDigests = [],
        Config = new ImageRuntimeConfig { Env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
    };

    public static void Build(string rootfs, IEnumerable<string> applets)
    {
        // busybox-static installs a statically linked /bin/busybox: a rootfs needs nothing else.
        const string busybox = "/bin/busybox";
        if (!File.Exists(busybox))
            throw new InvalidOperationException($"{busybox} is missing: install busybox-static (`make test-deps` does)");
        foreach (var dir in new[] { "bin", "etc", "proc", "sys", "dev", "tmp", "mnt" })
            Directory.CreateDirectory(Path.Combine(rootfs, dir));
        File.SetUnixFileMode(Path.Combine(rootfs, "tmp"), (UnixFileMode)0x3ff | UnixFileMode.StickyBit);
        var bin = Path.Combine(rootfs, "bin");
        File.Copy(busybox, Path.Combine(bin, "busybox"));
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = bin };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("for a in \"$@\"; do ln busybox \"$a\" || exit 1; done");
        info.ArgumentList.Add("sh");
        foreach (var a in applets)
            info.ArgumentList.Add(a);
        using (var p = Process.Start(info)!)
        {
            p.WaitForExit();
            if (p.ExitCode != 0)
                throw new InvalidOperationException("linking the busybox applets failed");
        }
        File.WriteAllText(Path.Combine(rootfs, "etc", "passwd"),
            "root:x:0:0:root:/root:/bin/sh\n" +
            "nobody:x:65534:65534:nobody:/home:/bin/false\n" +
            "default-user:x:1000:1000::/home/default-user:/bin/sh\n");
        File.WriteAllText(Path.Combine(rootfs, "etc", "group"),
            "root:x:0:\n" +
            "nogroup:x:65534:\n" +
            "default-user:x:1000:\n" +
            "group-defined-in-image:x:50000:default-user\n");
        // Mount targets of the pod's resolv.conf and hostname bind mounts.
        File.WriteAllBytes(Path.Combine(rootfs, "etc", "resolv.conf"), []);
        File.WriteAllBytes(Path.Combine(rootfs, "etc", "hostname"), []);
    }
}
