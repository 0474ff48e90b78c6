using Crid.Linux;

namespace Crid.Linux.Tests;

/// <summary>Every failing step leaves no pin file and no mount behind.</summary>
public class FailureTests
{
    private static readonly IdMapping[] Map = [new IdMapping(0, 100000, 65536)];

    private static PodNamespacesRequest Full(string dir) => new()
    {
        NamespacesDir = dir,
        Namespaces = [new("user", false), new("net", false), new("ipc", false), new("uts", false)],
        UidMappings = Map,
        GidMappings = Map,
        Sysctls = new Dictionary<string, string> { ["net.core.somaxconn"] = "1024", ["kernel.shmmni"] = "1000" },
        LoopbackUp = true,
        Hostname = "h",
    };

    private static void AssertNothingLeft(string dir)
    {
        Assert.Empty(TestHost.MountsUnder(dir));
        if (Directory.Exists(dir))
        {
            Assert.DoesNotContain(Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories), File.Exists);
        }
    }

    [Fact]
    public void Null_request_is_an_error()
    {
        Assert.Throws<ArgumentNullException>(() => PodNamespaces.Create(null));
    }

    [Fact]
    public void Unknown_type_is_named()
    {
        using var tmp = new TempNsDir();
        var e = Assert.Throws<ArgumentException>(() => PodNamespaces.Create(new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("net", false), new("mnt", false)],
        }));
        Assert.Contains("\"mnt\"", e.Message, StringComparison.Ordinal);
        AssertNothingLeft(tmp.Path);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void Mappings_are_required_with_user_and_refused_without()
    {
        using var tmp = new TempNsDir();
        var missing = Assert.Throws<ArgumentException>(() => PodNamespaces.Create(Full(tmp.Path) with { UidMappings = [] }));
        Assert.Contains("uids", missing.Message, StringComparison.Ordinal);
        var missingGid = Assert.Throws<ArgumentException>(() => PodNamespaces.Create(Full(tmp.Path) with { GidMappings = [] }));
        Assert.Contains("gids", missingGid.Message, StringComparison.Ordinal);
        var unwanted = Assert.Throws<ArgumentException>(() => PodNamespaces.Create(new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("net", false), new("user", true)],
            UidMappings = Map,
        }));
        Assert.Contains("only allowed with a new user namespace", unwanted.Message, StringComparison.Ordinal);
        AssertNothingLeft(tmp.Path);
    }

    [Fact]
    public void Mapping_the_kernel_refuses_rolls_back()
    {
        using var tmp = new TempNsDir();
        // Overlapping host ranges: user_namespaces(7) says the write fails with EINVAL.
        var e = Assert.Throws<SyscallException>(() => PodNamespaces.Create(
            Full(tmp.Path) with { GidMappings = [new IdMapping(0, 100000, 10), new IdMapping(10, 100005, 10)] },
            new PodNamespacesOptions { SkipMappingValidation = true }));
        Assert.Equal("gid_map", e.Step);
        Assert.Equal("user", e.NamespaceType);
        Assert.Equal("EINVAL", e.ErrnoName);
        Assert.Contains("EINVAL", e.Message, StringComparison.Ordinal);

        AssertNothingLeft(tmp.Path);
    }

    [Theory]
    [InlineData("net.core.somaxconn", "-5")]
    [InlineData("net.ipv4.ip_local_port_range", "abc")]
    [InlineData("kernel.shmmni", "notanumber")]
    public void Sysctl_value_the_kernel_rejects_rolls_back_everything(string name, string value)
    {
        using var tmp = new TempNsDir();
        var e = Assert.Throws<SyscallException>(() => PodNamespaces.Create(Full(tmp.Path) with
        {
            Sysctls = new Dictionary<string, string> { [name] = value },
        }));
        Assert.Equal("sysctl", e.Step);
        Assert.Equal(name.StartsWith("net", StringComparison.Ordinal) ? "net" : "ipc", e.NamespaceType);
        Assert.Equal("EINVAL", e.ErrnoName);
        Assert.Contains("/proc/sys/", e.Message, StringComparison.Ordinal);
        AssertNothingLeft(tmp.Path);
        Assert.True(Directory.Exists(Path.Combine(tmp.Path, "netns")), "the call got as far as pinning");
    }

    [Fact]
    public void Nonexistent_sysctl_is_ENOENT_and_rolls_back()
    {
        using var tmp = new TempNsDir();
        var e = Assert.Throws<SyscallException>(() => PodNamespaces.Create(Full(tmp.Path) with
        {
            Sysctls = new Dictionary<string, string> { ["net.core.no_such_knob"] = "1" },
        }));
        Assert.Equal("sysctl", e.Step);
        Assert.True(e.Errno == Tmds.Linux.LibC.ENOENT, e.Message);
        Assert.Contains("ENOENT", e.Message, StringComparison.Ordinal);
        AssertNothingLeft(tmp.Path);
    }

    [Fact]
    public void Bad_hostnames_are_refused_before_anything_is_made()
    {
        using var tmp = new TempNsDir();
        var tooLong = Assert.Throws<ArgumentException>(() => PodNamespaces.Create(Full(tmp.Path) with { Hostname = new string('h', 65) }));
        Assert.Contains("64 bytes", tooLong.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => PodNamespaces.Create(Full(tmp.Path) with { Hostname = "a\0b" }));
        var hostUts = Assert.Throws<ArgumentException>(() => PodNamespaces.Create(new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("uts", true)],
            Hostname = "x",
        }));
        Assert.Contains("new uts namespace", hostUts.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void Namespaces_dir_that_is_a_file_fails_cleanly()
    {
        using var tmp = new TempNsDir();
        string file = Path.Combine(tmp.Path, "file");
        File.WriteAllText(file, "");
        var e = Assert.Throws<SyscallException>(() => PodNamespaces.Create(Full(file)));
        Assert.Equal("create folder", e.Step);
        Assert.Equal("ENOTDIR", e.ErrnoName);
        File.Delete(file);
        AssertNothingLeft(tmp.Path);
    }

    [Fact]
    public void Read_only_type_folder_rolls_back_the_pins_made_before_it()
    {
        using var tmp = new TempNsDir();
        string uts = Path.Combine(tmp.Path, "utsns");
        Directory.CreateDirectory(uts);
        TestHost.Ok("mount", "--bind", uts, uts);
        try
        {
            TestHost.Ok("mount", "-o", "remount,bind,ro", uts);
            var e = Assert.Throws<SyscallException>(() => PodNamespaces.Create(Full(tmp.Path)));
            Assert.True(e.Step == "create pin", e.Message);
            Assert.Equal("uts", e.NamespaceType);
            Assert.Equal("EROFS", e.ErrnoName);
        }
        finally
        {
            TestHost.Ok("umount", uts);
        }

        AssertNothingLeft(tmp.Path);
        Assert.Empty(Directory.GetFiles(Path.Combine(tmp.Path, "netns")));
    }

    [Theory]
    [InlineData("create folder")]
    [InlineData("clone")]
    [InlineData("uid_map")]
    [InlineData("gid_map")]
    [InlineData("create pin")]
    [InlineData("bind mount")]
    [InlineData("configure")]
    public void Each_step_failing_leaves_nothing(string step)
    {
        using var tmp = new TempNsDir();
        var e = Assert.Throws<SyscallException>(() => PodNamespaces.Create(Full(tmp.Path), new PodNamespacesOptions { FailAtStep = step }));
        Assert.Equal(step, e.Step);
        Assert.Equal("EIO", e.ErrnoName);

        AssertNothingLeft(tmp.Path);
    }

    [Theory]
    [InlineData("kernel.hostname", "not a namespaced sysctl")]
    [InlineData("vm.swappiness", "not a namespaced sysctl")]
    [InlineData("net..core", "empty segment")]
    [InlineData("net/../../etc", "'.' and '..'")]
    [InlineData(".net.core.somaxconn", "leading or trailing")]
    public void Sysctl_rule_refusals_happen_before_anything_is_made(string name, string rule)
    {
        using var tmp = new TempNsDir();
        var e = Assert.Throws<SysctlRejectedException>(() => PodNamespaces.Create(Full(tmp.Path) with
        {
            Sysctls = new Dictionary<string, string> { [name] = "1" },
        }));
        Assert.Equal(name, e.Name);
        Assert.Contains(rule, e.Rule, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void Net_sysctl_with_host_network_is_refused()
    {
        using var tmp = new TempNsDir();
        var e = Assert.Throws<SysctlRejectedException>(() => PodNamespaces.Create(new PodNamespacesRequest
        {
            NamespacesDir = tmp.Path,
            Namespaces = [new("net", true), new("ipc", false)],
            Sysctls = new Dictionary<string, string> { ["net.core.somaxconn"] = "1" },
        }));
        Assert.Contains("host", e.Rule, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }
}
