using Crid.Linux;

namespace Crid.Linux.Tests;

/// <summary>Pure checks: no root, no kernel.</summary>
public class ValidationTests
{
    [Theory]
    [InlineData("net.core.somaxconn", "/proc/sys/net/core/somaxconn")]
    [InlineData("net/ipv4/conf/eth0.100/forwarding", "/proc/sys/net/ipv4/conf/eth0.100/forwarding")]
    [InlineData("kernel.shm_rmid_forced", "/proc/sys/kernel/shm_rmid_forced")]
    [InlineData("kernel.shmmax", "/proc/sys/kernel/shmmax")]
    [InlineData("kernel.msgmax", "/proc/sys/kernel/msgmax")]
    [InlineData("kernel.sem", "/proc/sys/kernel/sem")]
    [InlineData("fs.mqueue.msg_max", "/proc/sys/fs/mqueue/msg_max")]
    public void Namespaced_sysctls_are_accepted(string name, string path)
    {
        Sysctls.Validate(name, "1", hostNetwork: false, hostIpc: false);
        Assert.Equal(path, Sysctls.ProcPath(name));
    }

    [Theory]
    [InlineData("kernel.hostname", "not a namespaced")]
    [InlineData("kernel.domainname", "not a namespaced")]
    [InlineData("fs.file-max", "not a namespaced")]
    [InlineData("kernel.sem_extra", "not a namespaced")]
    [InlineData("kernel.shm.x", "not a namespaced")]
    [InlineData("net", "not a namespaced")]
    [InlineData("", "empty")]
    [InlineData("net.core.", "leading or trailing")]
    [InlineData("/net/core/somaxconn", "leading or trailing")]
    [InlineData("net..core", "empty segment")]
    [InlineData("net//core", "empty segment")]
    [InlineData("net/./core", "'.' and '..'")]
    [InlineData("net/core/..", "'.' and '..'")]
    [InlineData("net/../kernel/hostname", "'.' and '..'")]
    [InlineData("net.co\0re", "NUL")]
    public void Bad_names_are_refused_naming_the_rule(string name, string rule)
    {
        var e = Assert.Throws<SysctlRejectedException>(() => Sysctls.Validate(name, "1", false, false));
        Assert.Equal(name, e.Name);
        Assert.Contains(rule, e.Rule, StringComparison.Ordinal);
        Assert.Contains(rule, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1\n2")]
    [InlineData("1\0")]
    public void Bad_values_are_refused(string value)
    {
        var e = Assert.Throws<SysctlRejectedException>(() => Sysctls.Validate("net.core.somaxconn", value, false, false));
        Assert.Contains("NUL or newline", e.Rule, StringComparison.Ordinal);
    }

    [Fact]
    public void Host_namespaces_refuse_their_sysctls()
    {
        Assert.Contains("network", Assert.Throws<SysctlRejectedException>(() => Sysctls.Validate("net.core.somaxconn", "1", true, false)).Rule, StringComparison.Ordinal);
        Assert.Contains("ipc", Assert.Throws<SysctlRejectedException>(() => Sysctls.Validate("kernel.shmmax", "1", false, true)).Rule, StringComparison.Ordinal);
        Assert.Contains("ipc", Assert.Throws<SysctlRejectedException>(() => Sysctls.Validate("fs.mqueue.queues_max", "1", false, true)).Rule, StringComparison.Ordinal);
        Sysctls.Validate("net.core.somaxconn", "1", false, true);
        Sysctls.Validate("kernel.msgmnb", "1", true, false);
    }

    public static TheoryData<IdMapping[], string> BadMappings => new()
    {
        { [], "uids: at least one" },
        { [new(0, 100000, 0)], "uids[0]: length must be > 0" },
        { [new(0, uint.MaxValue - 5, 10)], "uids[0]: start + length overflows" },
        { [new(0, uint.MaxValue - 10, 11)], "uids[0]: range includes id 4294967295" },
        { [new(0, 100000, 100), new(50, 300000, 10)], "uids[1]: container range overlaps uids[0]" },
        { [new(0, 100000, 100), new(200, 100099, 10)], "uids[1]: host range overlaps uids[0]" },
        { [new(1, 100000, 100)], "uids: container id 0 must be mapped" },
        { Enumerable.Range(0, 341).Select(i => new IdMapping((uint)i, (uint)(100000 + i), 1)).ToArray(), "exceed the kernel limit of 340" },
    };

    [Theory]
    [MemberData(nameof(BadMappings))]
    public void Bad_mappings_are_refused_naming_the_field(IdMapping[] mappings, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => IdMappings.Validate(mappings, "uids"));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Good_mappings_pass()
    {
        IdMappings.Validate([new(0, 100000, 65536)], "uids");
        IdMappings.Validate([new(1, 200001, 99), new(0, 200000, 1), new(100, 300000, 340)], "gids");
        IdMappings.Validate(Enumerable.Range(0, 340).Select(i => new IdMapping((uint)i, (uint)(100000 + i), 1)).ToArray(), "uids");
        Assert.Equal("0 100000 65536\n1 5 2\n", IdMappings.Format([new(0, 100000, 65536), new(1, 5, 2)]));
    }

    [Fact]
    public void Errno_names_are_symbolic()
    {
        Assert.Equal("EINVAL", Interop.ErrnoName(22));
        Assert.Equal("ENOTSUP", Interop.ErrnoName(95));
        Assert.Equal("errno 999", Interop.ErrnoName(999));
        var e = Interop.Error(Tmds.Linux.LibC.ENOENT, "open", "/proc/sys/net/x", "sysctl", "net");
        Assert.Equal("sysctl (net namespace): open /proc/sys/net/x: ENOENT: No such file or directory", e.Message);
    }
}
