#pragma warning disable CS0612 // the deprecated seccomp_profile_path and apparmor_profile are what critest v1.26 sends
using System.Runtime.InteropServices;
using System.Text;
using Crid.Core.Errors;
using Crid.Core.Oci;
using Runtime.V1;

namespace Crid.Core.Tests;

/// <summary>Privileged, masked and read-only paths, seccomp and AppArmor.</summary>
public sealed class ContainerSpecSecurityTests : IDisposable
{
    private readonly SpecFixture _f = new();

    public void Dispose() => _f.Dispose();

    private const string BlockHostname = """
        { "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [ { "names": ["sethostname"], "action": "SCMP_ACT_ERRNO" } ] }
        """;

    [Fact]
    public void Masked_and_read_only_paths_default_to_containerds_and_the_config_replaces_them()
    {
        var spec = _f.Build(_ => { });
        Assert.Equal(PodSpec.DefaultMaskedPaths, spec.Linux!.MaskedPaths!);
        Assert.Equal(PodSpec.DefaultReadonlyPaths, spec.Linux.ReadonlyPaths!);
        var own = _f.Build(c =>
        {
            c.Linux.SecurityContext.MaskedPaths.Add("/bin/ls");
            c.Linux.SecurityContext.ReadonlyPaths.Add("/tmp");
        });
        Assert.Equal(["/bin/ls"], own.Linux!.MaskedPaths!);
        Assert.Equal(["/tmp"], own.Linux.ReadonlyPaths!);
    }

    [Fact]
    public void Privileged_needs_a_privileged_pod()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Linux.SecurityContext.Privileged = true));
        Assert.Equal("config.linux.security_context.privileged", e.Field);
    }

    [Fact]
    public void Privileged_is_every_capability_the_daemon_holds_nothing_masked_every_device_and_no_seccomp()
    {
        _f.Host.Profiles["/profiles/block.json"] = Encoding.UTF8.GetBytes(BlockHostname);
        var spec = _f.Build(c =>
        {
            c.Linux.SecurityContext.Privileged = true;
            c.Linux.SecurityContext.SeccompProfilePath = "localhost//profiles/block.json";
            c.Linux.SecurityContext.MaskedPaths.Add("/bin/ls");
            c.Linux.SecurityContext.Capabilities = new Capability { DropCapabilities = { "ALL" } };
        }, pod: _f.Pod(privileged: true));
        Assert.Equal(_f.Host.BoundingCapabilities, spec.Process!.Capabilities!.Bounding!);
        Assert.Null(spec.Linux!.MaskedPaths);
        Assert.Null(spec.Linux.ReadonlyPaths);
        Assert.Null(spec.Linux.Seccomp);
        Assert.DoesNotContain("ro", spec.Mounts!.Single(m => m.Destination == "/sys").Options!);
        Assert.DoesNotContain("ro", spec.Mounts!.Single(m => m.Destination == "/sys/fs/cgroup").Options!);
        Assert.Equal(["/dev/fuse", "/dev/loop0", "/dev/null"], spec.Linux.Devices!.Select(d => d.Path).Order());
        var rule = Assert.Single(spec.Linux.Resources!.Devices!);
        Assert.True(rule.Allow);
        Assert.Equal("rwm", rule.Access);
    }

    [Theory]
    [InlineData("")]
    [InlineData("unconfined")]
    public void The_deprecated_empty_or_unconfined_path_is_no_seccomp(string path) =>
        Assert.Null(_f.Build(c => c.Linux.SecurityContext.SeccompProfilePath = path).Linux!.Seccomp);

    [Theory]
    [InlineData("runtime/default")]
    [InlineData("docker/default")]
    public void The_deprecated_default_names_are_crids_default_profile(string path)
    {
        var seccomp = _f.Build(c => c.Linux.SecurityContext.SeccompProfilePath = path).Linux!.Seccomp!;
        Assert.Equal("SCMP_ACT_ERRNO", seccomp.DefaultAction);
        Assert.Equal(1u, seccomp.DefaultErrnoRet);
        Assert.False(Allows(seccomp, "sethostname"));
        Assert.True(Allows(seccomp, "read"));
    }

    [Fact]
    public void The_default_profile_lets_a_capability_use_its_own_syscalls()
    {
        var seccomp = _f.Build(c =>
        {
            c.Linux.SecurityContext.Seccomp = new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.RuntimeDefault };
            c.Linux.SecurityContext.Capabilities = new Capability { AddCapabilities = { "SYS_ADMIN" } };
        }).Linux!.Seccomp!;
        Assert.True(Allows(seccomp, "sethostname"));
        Assert.True(Allows(seccomp, "mount"));
        Assert.False(Allows(seccomp, "reboot"));
        Assert.DoesNotContain(seccomp.Syscalls!, s => s.Names!.Contains("clone3") && s.Action == "SCMP_ACT_ERRNO");
    }

    [Fact]
    public void Without_CAP_SYS_ADMIN_the_default_profile_filters_clone_flags_and_sends_clone3_to_ENOSYS()
    {
        var seccomp = DefaultSeccomp.Build(PodSpec.DefaultCapabilities, Architecture.X64);
        var clone = Assert.Single(seccomp.Syscalls!, s => s.Names!.Contains("clone"));
        var arg = Assert.Single(clone.Args!);
        Assert.Equal(("SCMP_CMP_MASKED_EQ", 0u, 0UL), (arg.Op, arg.Index, arg.ValueTwo ?? 99));
        Assert.Equal(0x7E020000UL, arg.Value);
        var clone3 = Assert.Single(seccomp.Syscalls!, s => s.Names!.Contains("clone3"));
        Assert.Equal(("SCMP_ACT_ERRNO", 38u), (clone3.Action, clone3.ErrnoRet ?? 0));
        Assert.Equal(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], seccomp.Architectures!);
        foreach (var blocked in new[] { "ptrace", "mount", "unshare", "setns", "keyctl", "add_key", "bpf", "kexec_load", "init_module", "acct", "swapon", "settimeofday" })
            Assert.False(Allows(seccomp, blocked), blocked);
    }

    private static bool Allows(LinuxSeccomp seccomp, string name) =>
        seccomp.Syscalls!.Any(s => s.Action == "SCMP_ACT_ALLOW" && s.Names!.Contains(name) && s.Args is null);

    [Fact]
    public void A_localhost_profile_is_read_into_the_spec()
    {
        _f.Host.Profiles["/profiles/block.json"] = Encoding.UTF8.GetBytes(BlockHostname);
        var deprecated = _f.Build(c => c.Linux.SecurityContext.SeccompProfilePath = "localhost//profiles/block.json").Linux!.Seccomp!;
        Assert.Equal("SCMP_ACT_ALLOW", deprecated.DefaultAction);
        Assert.Equal(["sethostname"], Assert.Single(deprecated.Syscalls!).Names!);
        var current = _f.Build(c => c.Linux.SecurityContext.Seccomp = new SecurityProfile
        {
            ProfileType = SecurityProfile.Types.ProfileType.Localhost,
            LocalhostRef = "/profiles/block.json",
        }).Linux!.Seccomp!;
        Assert.Equal("SCMP_ACT_ERRNO", Assert.Single(current.Syscalls!).Action);
    }

    [Fact]
    public void Dockers_profile_format_is_folded_into_the_runtime_specs()
    {
        _f.Host.Profiles["/p.json"] = Encoding.UTF8.GetBytes("""
            { "defaultAction": "SCMP_ACT_ERRNO", "archMap": [ { "architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"] } ],
              "syscalls": [ { "name": "read", "action": "SCMP_ACT_ALLOW", "args": [] }, { "names": ["write"], "action": "SCMP_ACT_ALLOW",
              "includes": { "caps": ["CAP_SYS_ADMIN"] } } ] }
            """);
        var seccomp = _f.Build(c => c.Linux.SecurityContext.SeccompProfilePath = "localhost//p.json").Linux!.Seccomp!;
        Assert.Equal(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], seccomp.Architectures!);
        Assert.Null(seccomp.ArchMap);
        Assert.Equal(["read"], seccomp.Syscalls![0].Names!);
        var json = Encoding.UTF8.GetString(SpecJson.SerializeSeccomp(seccomp));
        Assert.DoesNotContain("archMap", json);
        Assert.DoesNotContain("\"name\"", json);
    }

    [Theory]
    [InlineData("/profiles/block.json", "seccomp_profile_path")]             // critest: no localhost/ prefix
    [InlineData("localhost/relative.json", "seccomp_profile_path")]
    [InlineData("localhost//missing.json", "seccomp_profile_path")]
    [InlineData("localhost//bad.json", "seccomp_profile_path")]
    [InlineData("localhost//badaction.json", "seccomp_profile_path")]
    public void A_profile_that_cannot_be_used_is_InvalidArgument(string path, string field)
    {
        _f.Host.Profiles["/profiles/block.json"] = Encoding.UTF8.GetBytes(BlockHostname);
        _f.Host.Profiles["/bad.json"] = Encoding.UTF8.GetBytes("{ not json");
        _f.Host.Profiles["/badaction.json"] = Encoding.UTF8.GetBytes("""{ "defaultAction": "SCMP_ACT_EXPLODE" }""");
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Linux.SecurityContext.SeccompProfilePath = path));
        Assert.Equal($"config.linux.security_context.{field}", e.Field);
    }

    [Fact]
    public void Without_kernel_seccomp_the_default_is_skipped_and_a_localhost_profile_refused()
    {
        _f.Host.SeccompEnabled = false;
        _f.Host.Profiles["/profiles/block.json"] = Encoding.UTF8.GetBytes(BlockHostname);
        Assert.Null(_f.Build(c => c.Linux.SecurityContext.SeccompProfilePath = "runtime/default").Linux!.Seccomp);
        Assert.Throws<FailedPreconditionException>(() => _f.Build(c => c.Linux.SecurityContext.SeccompProfilePath = "localhost//profiles/block.json"));
    }

    [Fact]
    public void AppArmor_on_a_kernel_without_it_refuses_only_a_named_profile()
    {
        Assert.Null(_f.Build(c => c.Linux.SecurityContext.Apparmor = new SecurityProfile()).Process!.ApparmorProfile);
        Assert.Null(_f.Build(c => c.Linux.SecurityContext.ApparmorProfile = "runtime/default").Process!.ApparmorProfile);
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Linux.SecurityContext.Apparmor = new SecurityProfile
        {
            ProfileType = SecurityProfile.Types.ProfileType.Localhost,
            LocalhostRef = "k8s-deny-write",
        }));
        Assert.Equal("config.linux.security_context.apparmor", e.Field);
        Assert.Contains("not enabled", e.Message);
        Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Linux.SecurityContext.ApparmorProfile = "localhost/k8s-deny-write"));
        Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Linux.SecurityContext.ApparmorProfile = "k8s-deny-write"));
    }

    [Fact]
    public void AppArmor_on_a_kernel_with_it_names_the_localhost_profile()
    {
        _f.Host.AppArmorEnabled = true;
        Assert.Equal("k8s-deny-write", _f.Build(c => c.Linux.SecurityContext.ApparmorProfile = "localhost/k8s-deny-write").Process!.ApparmorProfile);
    }
}
