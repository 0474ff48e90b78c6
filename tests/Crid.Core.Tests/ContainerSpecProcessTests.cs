using Crid.Core.Errors;
using Crid.Core.Oci;
using Runtime.V1;

namespace Crid.Core.Tests;

/// <summary>The container's process: argv, environment, working folder, user, groups, capabilities, no_new_privs.</summary>
public sealed class ContainerSpecProcessTests : IDisposable
{
    private readonly SpecFixture _f = new();

    public void Dispose() => _f.Dispose();

    [Theory]
    // command, args, image entrypoint, image cmd -> argv (kubelet's and docker's rules)
    [InlineData("", "", "", "sh", "sh")]
    [InlineData("", "", "/entry", "a b", "/entry a b")]
    [InlineData("/bin/top", "", "/entry", "a b", "/bin/top")]
    [InlineData("", "x y", "/entry", "a b", "/entry x y")]
    [InlineData("/bin/top", "-b", "/entry", "a b", "/bin/top -b")]
    [InlineData("", "", "<empty>", "a b", "a b")]
    public void Command_and_args_merge_with_the_images_entrypoint_and_cmd(string command, string args, string entrypoint, string cmd, string argv)
    {
        static List<string> Split(string s) => s.Length == 0 ? [] : [.. s.Split(' ')];
        var spec = _f.Build(c =>
        {
            c.Command.AddRange(Split(command));
            c.Args.AddRange(Split(args));
        }, image: SpecFixture.Image(i =>
        {
            i.Entrypoint = entrypoint == "<empty>" ? [""] : Split(entrypoint);
            i.Cmd = Split(cmd);
        }));
        Assert.Equal(Split(argv), spec.Process!.Args);
    }

    [Fact]
    public void No_command_anywhere_is_InvalidArgument_naming_the_command()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(_ => { }, image: SpecFixture.Image(i => i.Cmd = [])));
        Assert.Equal("config.command", e.Field);
    }

    [Fact]
    public void Env_is_the_default_path_the_hostname_the_images_then_the_configs()
    {
        var spec = _f.Build(c =>
        {
            c.Envs.Add(new KeyValue { Key = "MODE", Value = "debug" });
            c.Envs.Add(new KeyValue { Key = "EMPTY", Value = "" });
        }, image: SpecFixture.Image(i => i.Env = ["PATH=/app/bin", "MODE=prod", "LANG=C.UTF-8"]));
        Assert.Equal(["PATH=/app/bin", "HOSTNAME=web-host", "MODE=debug", "LANG=C.UTF-8", "EMPTY="], spec.Process!.Env);
    }

    [Fact]
    public void An_image_without_PATH_gets_the_default_one()
    {
        var spec = _f.Build(_ => { }, image: SpecFixture.Image(i => i.Env = []));
        Assert.Equal(PodSpec.DefaultPath, spec.Process!.Env![0]);
    }

    [Theory]
    [InlineData("/srv", "/img", "/srv")]
    [InlineData("", "/img", "/img")]
    [InlineData("", "img/./sub/", "/img/sub")]
    [InlineData("", "", "/")]
    public void The_working_dir_is_the_configs_else_the_images_else_root(string config, string image, string cwd)
    {
        var spec = _f.Build(c => c.WorkingDir = config, image: SpecFixture.Image(i => i.WorkingDir = image));
        Assert.Equal(cwd, spec.Process!.Cwd);
    }

    [Fact]
    public void Tty_asks_for_a_terminal()
    {
        Assert.True(_f.Build(c => c.Tty = true).Process!.Terminal);
        Assert.False(_f.Build(_ => { }).Process!.Terminal);
    }

    // ---- user and groups ----

    [Fact]
    public void By_default_the_process_is_root_with_roots_groups()
    {
        var user = _f.Build(_ => { }).Process!.User;
        Assert.Equal((0u, 0u), (user.Uid, user.Gid));
        Assert.Equal([0u], user.AdditionalGids!);
    }

    [Fact]
    public void Run_as_user_takes_the_primary_group_from_the_images_passwd()
    {
        var user = _f.Build(c => c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1000 }).Process!.User;
        Assert.Equal((1000u, 1000u), (user.Uid, user.Gid));
        // critest: "id -G" shows the user's own group, the image's groups listing it (50000, 29).
        Assert.Equal([29u, 1000u, 50000u], user.AdditionalGids!);
    }

    [Fact]
    public void Run_as_user_unknown_to_the_image_runs_with_gid_0()
    {
        var user = _f.Build(c => c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1001 }).Process!.User;
        Assert.Equal((1001u, 0u), (user.Uid, user.Gid));
    }

    [Fact]
    public void Run_as_group_sets_the_primary_group()
    {
        var user = _f.Build(c =>
        {
            c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1001 };
            c.Linux.SecurityContext.RunAsGroup = new Int64Value { Value = 1002 };
        }).Process!.User;
        Assert.Equal((1001u, 1002u), (user.Uid, user.Gid));
    }

    [Fact]
    public void Run_as_group_without_a_user_is_InvalidArgument()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Linux.SecurityContext.RunAsGroup = new Int64Value { Value = 1002 }));
        Assert.Equal("config.linux.security_context.run_as_group", e.Field);
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(4294967295L)]
    public void An_id_outside_the_kernels_range_is_InvalidArgument(long uid)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = uid }));
        Assert.Equal("config.linux.security_context.run_as_user", e.Field);
    }

    [Fact]
    public void Run_as_username_is_resolved_in_the_image()
    {
        var user = _f.Build(c => c.Linux.SecurityContext.RunAsUsername = "nobody").Process!.User;
        Assert.Equal((65534u, 65534u), (user.Uid, user.Gid));
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Linux.SecurityContext.RunAsUsername = "ghost"));
        Assert.Equal("config.linux.security_context.run_as_username", e.Field);
        Assert.Contains("ghost", e.Message);
    }

    [Theory]
    [InlineData("www", 33u, 33u)]
    [InlineData("33", 33u, 33u)]
    [InlineData("1000:50000", 1000u, 50000u)]
    [InlineData("www:audio", 33u, 29u)]
    [InlineData("4242", 4242u, 0u)]
    [InlineData("4242:7", 4242u, 7u)]
    public void The_images_user_applies_when_the_config_names_none(string imageUser, uint uid, uint gid)
    {
        var user = _f.Build(_ => { }, image: SpecFixture.Image(i => i.User = imageUser)).Process!.User;
        Assert.Equal((uid, gid), (user.Uid, user.Gid));
    }

    [Theory]
    [InlineData("ghost")]
    [InlineData("www:ghosts")]
    public void An_image_user_or_group_missing_from_its_files_is_FailedPrecondition(string imageUser)
    {
        Assert.Throws<FailedPreconditionException>(() => _f.Build(_ => { }, image: SpecFixture.Image(i => i.User = imageUser)));
    }

    [Fact]
    public void The_config_user_wins_over_the_images()
    {
        var user = _f.Build(c => c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1000 },
            image: SpecFixture.Image(i => i.User = "www")).Process!.User;
        Assert.Equal(1000u, user.Uid);
    }

    [Fact]
    public void Supplemental_groups_merge_with_the_images_unless_the_policy_is_strict()
    {
        var merged = _f.Build(c =>
        {
            c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1000 };
            c.Linux.SecurityContext.SupplementalGroups.Add([1234, 5678]);
        }).Process!.User;
        Assert.Equal([29u, 1000u, 1234u, 5678u, 50000u], merged.AdditionalGids!);
        var strict = _f.Build(c =>
        {
            c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1000 };
            c.Linux.SecurityContext.SupplementalGroups.Add(1234);
            c.Linux.SecurityContext.SupplementalGroupsPolicy = SupplementalGroupsPolicy.Strict;
        }).Process!.User;
        Assert.Equal([1000u, 1234u], strict.AdditionalGids!);
    }

    [Fact]
    public void The_images_passwd_is_read_inside_the_rootfs_even_through_an_absolute_symlink()
    {
        // An image whose /etc/passwd points at "/etc/passwd-real" must read its own file, not the host's.
        var etc = Path.Combine(_f.Rootfs, "etc");
        File.Move(Path.Combine(etc, "passwd"), Path.Combine(etc, "passwd-real"));
        File.CreateSymbolicLink(Path.Combine(etc, "passwd"), "/etc/passwd-real");
        var user = _f.Build(c => c.Linux.SecurityContext.RunAsUsername = "default-user").Process!.User;
        Assert.Equal(1000u, user.Uid);

        // And a link that climbs out with ".." stays inside too: the host's /etc/passwd has no default-user.
        File.Delete(Path.Combine(etc, "passwd"));
        File.CreateSymbolicLink(Path.Combine(etc, "passwd"), "../../../../../../../../etc/passwd");
        Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Linux.SecurityContext.RunAsUsername = "default-user"));
        // The same link resolved inside the rootfs is the rootfs's own etc/passwd: itself, a loop: no users.
        Assert.Equal(0u, _f.Build(_ => { }).Process!.User.Uid);
    }

    [Fact]
    public void An_image_without_account_files_runs_numeric_ids()
    {
        File.Delete(Path.Combine(_f.Rootfs, "etc", "passwd"));
        File.Delete(Path.Combine(_f.Rootfs, "etc", "group"));
        var user = _f.Build(c => c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1000 }).Process!.User;
        Assert.Equal((1000u, 0u), (user.Uid, user.Gid));
    }

    // ---- capabilities ----

    private List<string> Caps(Action<Capability> edit) =>
        _f.Build(c =>
        {
            c.Linux.SecurityContext.Capabilities = new Capability();
            edit(c.Linux.SecurityContext.Capabilities);
        }).Process!.Capabilities!.Bounding!;

    [Fact]
    public void The_default_capabilities_are_containerds_in_every_set_but_inheritable_and_ambient()
    {
        var caps = _f.Build(_ => { }).Process!.Capabilities!;
        Assert.Equal(PodSpec.DefaultCapabilities, caps.Bounding!);
        Assert.Equal(caps.Bounding, caps.Effective);
        Assert.Equal(caps.Bounding, caps.Permitted);
        Assert.Null(caps.Inheritable);
        Assert.Null(caps.Ambient);
    }

    [Fact]
    public void Capabilities_are_added_and_dropped_by_their_CRI_names()
    {
        var caps = Caps(c =>
        {
            c.AddCapabilities.Add(["NET_ADMIN", "cap_sys_admin"]);
            c.DropCapabilities.Add("NET_RAW");
        });
        Assert.Contains("CAP_NET_ADMIN", caps);
        Assert.Contains("CAP_SYS_ADMIN", caps);
        Assert.DoesNotContain("CAP_NET_RAW", caps);
    }

    [Fact]
    public void Adding_ALL_gives_the_daemons_own_bounding_set_and_dropping_ALL_gives_none()
    {
        var all = Caps(c => c.AddCapabilities.Add("ALL"));
        Assert.Equal(_f.Host.BoundingCapabilities, all);
        Assert.DoesNotContain("CAP_SYS_RESOURCE", all);
        Assert.Empty(Caps(c => c.DropCapabilities.Add("ALL")));
        Assert.Equal(["CAP_NET_ADMIN"], Caps(c =>
        {
            c.DropCapabilities.Add("ALL");
            c.AddCapabilities.Add("NET_ADMIN");
        }));
        Assert.DoesNotContain("CAP_CHOWN", Caps(c =>
        {
            c.AddCapabilities.Add("ALL");
            c.DropCapabilities.Add("CHOWN");
        }));
    }

    [Fact]
    public void A_capability_the_daemon_lacks_or_linux_does_not_know_is_InvalidArgument()
    {
        var lacking = Assert.Throws<InvalidArgumentException>(() => Caps(c => c.AddCapabilities.Add("SYS_RESOURCE")));
        Assert.Equal("config.linux.security_context.capabilities.add_capabilities[0]", lacking.Field);
        var unknown = Assert.Throws<InvalidArgumentException>(() => Caps(c => c.DropCapabilities.Add("FLY")));
        Assert.Equal("config.linux.security_context.capabilities.drop_capabilities[0]", unknown.Field);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void No_new_privs_is_the_configs(bool on) =>
        Assert.Equal(on, _f.Build(c => c.Linux.SecurityContext.NoNewPrivs = on).Process!.NoNewPrivileges);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_root_is_read_only_when_asked(bool on)
    {
        var spec = _f.Build(c => c.Linux.SecurityContext.ReadonlyRootfs = on);
        Assert.Equal(_f.Rootfs, spec.Root!.Path);
        Assert.Equal(on, spec.Root.Readonly);
    }
}
