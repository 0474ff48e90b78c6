using Crid.Core.Errors;
using Crid.Core.Oci;
using Runtime.V1;
using CriMount = Runtime.V1.Mount;

namespace Crid.Core.Tests;

/// <summary>Mounts (defaults, the pod's files, host paths, image volumes) and devices.</summary>
public sealed class ContainerSpecMountTests : IDisposable
{
    private readonly SpecFixture _f = new();

    public void Dispose() => _f.Dispose();

    private static Dictionary<string, Oci.SpecMount> ByDestination(Spec spec) => spec.Mounts!.ToDictionary(m => m.Destination);

    [Fact]
    public void The_defaults_and_the_pods_files_are_mounted()
    {
        var pod = _f.Pod();
        var mounts = ByDestination(_f.Build(_ => { }, pod));
        Assert.Equal(["/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/dev/shm", "/sys/fs/cgroup", "/etc/resolv.conf", "/etc/hostname"], mounts.Keys);
        Assert.Equal(pod.ShmPath, mounts["/dev/shm"].Source);
        Assert.Equal(pod.ResolvConfPath, mounts["/etc/resolv.conf"].Source);
        Assert.Equal(pod.HostnamePath, mounts["/etc/hostname"].Source);
        Assert.Contains("rw", mounts["/etc/resolv.conf"].Options!);
        Assert.Contains("ro", mounts["/sys/fs/cgroup"].Options!);
        Assert.Equal("cgroup", mounts["/sys/fs/cgroup"].Type);
    }

    [Fact]
    public void With_a_read_only_root_the_pods_files_are_read_only_too()
    {
        var mounts = ByDestination(_f.Build(c => c.Linux.SecurityContext.ReadonlyRootfs = true));
        Assert.Contains("ro", mounts["/etc/resolv.conf"].Options!);
        Assert.Contains("ro", mounts["/etc/hostname"].Options!);
    }

    [Fact]
    public void With_the_hosts_ipc_the_container_gets_the_hosts_dev_shm()
    {
        var pod = _f.Pod(pid: NamespaceMode.Node, network: NamespaceMode.Node, ipc: NamespaceMode.Node);
        var spec = _f.Build(c => c.Linux.SecurityContext.NamespaceOptions = pod.NamespaceOptions, pod);
        Assert.Equal("/dev/shm", ByDestination(spec)["/dev/shm"].Source);
    }

    [Fact]
    public void A_user_namespaced_pod_on_the_hosts_network_and_ipc_binds_the_hosts_sys_and_mounts_no_mqueue()
    {
        var pod = _f.Pod(pid: NamespaceMode.Container, network: NamespaceMode.Node, ipc: NamespaceMode.Node, userns: true);
        var mounts = ByDestination(_f.Build(c => c.Linux.SecurityContext.NamespaceOptions = pod.NamespaceOptions, pod));
        Assert.Equal(("bind", "/sys"), (mounts["/sys"].Type, mounts["/sys"].Source));
        Assert.Contains("ro", mounts["/sys"].Options!);
        Assert.False(mounts.ContainsKey("/dev/mqueue"));
    }

    [Fact]
    public void A_host_path_is_bound_read_write_or_read_only_privately_by_default()
    {
        var data = Directory.CreateDirectory(Path.Combine(_f.Dir, "data")).FullName;
        var mounts = ByDestination(_f.Build(c =>
        {
            c.Mounts.Add(new CriMount { HostPath = data, ContainerPath = "/data" });
            c.Mounts.Add(new CriMount { HostPath = data, ContainerPath = "/config/", Readonly = true });
        }));
        Assert.Equal(("bind", data), (mounts["/data"].Type, mounts["/data"].Source));
        Assert.Equal(["rbind", "rprivate", "rw"], mounts["/data"].Options!);
        Assert.Equal(["rbind", "rprivate", "ro"], mounts["/config"].Options!);
    }

    [Fact]
    public void A_missing_host_path_is_created_as_a_folder_and_a_symlink_is_resolved()
    {
        var missing = Path.Combine(_f.Dir, "made", "by", "crid");
        var real = Directory.CreateDirectory(Path.Combine(_f.Dir, "real")).FullName;
        var link = Path.Combine(_f.Dir, "link");
        File.CreateSymbolicLink(link, real);
        var mounts = ByDestination(_f.Build(c =>
        {
            c.Mounts.Add(new CriMount { HostPath = missing, ContainerPath = "/made" });
            c.Mounts.Add(new CriMount { HostPath = link + "/", ContainerPath = "/linked" });
        }));
        Assert.True(Directory.Exists(missing));
        Assert.Equal("755", Convert.ToString((int)File.GetUnixFileMode(missing) & 0x1ff, 8));
        Assert.Equal(real, mounts["/linked"].Source);
    }

    [Fact]
    public void A_request_the_host_refuses_creates_no_host_path()
    {
        var missing = Path.Combine(_f.Dir, "never");
        Assert.Throws<InvalidArgumentException>(() => _f.Build(c =>
        {
            c.Mounts.Add(new CriMount { HostPath = missing, ContainerPath = "/made" });
            c.Linux.Resources = new LinuxContainerResources { CpusetCpus = "7" };
        }));
        Assert.Throws<InvalidArgumentException>(() => _f.Build(c =>
        {
            c.Mounts.Add(new CriMount { HostPath = missing, ContainerPath = "/made" });
            c.Devices.Add(new Device { HostPath = "/dev/nope" });
        }));
        Assert.False(Directory.Exists(missing));
    }

    [Fact]
    public void Propagation_maps_to_rslave_and_rshared_and_sets_the_roots()
    {
        var shared = Directory.CreateDirectory(Path.Combine(_f.Dir, "propagating")).FullName;
        _f.Host.Propagations[shared] = Propagation.Shared;
        var slave = _f.Build(c => c.Mounts.Add(new CriMount { HostPath = shared, ContainerPath = "/s", Propagation = MountPropagation.PropagationHostToContainer }));
        Assert.Contains("rslave", ByDestination(slave)["/s"].Options!);
        Assert.Equal("rslave", slave.Linux!.RootfsPropagation);
        var both = _f.Build(c =>
        {
            c.Mounts.Add(new CriMount { HostPath = shared, ContainerPath = "/b", Propagation = MountPropagation.PropagationBidirectional });
            c.Mounts.Add(new CriMount { HostPath = shared, ContainerPath = "/b/s", Propagation = MountPropagation.PropagationHostToContainer });
        });
        Assert.Contains("rshared", ByDestination(both)["/b"].Options!);
        // rslave after rshared leaves the root shared.
        Assert.Equal("rshared", both.Linux!.RootfsPropagation);
        Assert.Null(_f.Build(c => c.Mounts.Add(new CriMount { HostPath = shared, ContainerPath = "/p" })).Linux!.RootfsPropagation);
    }

    [Fact]
    public void Propagation_the_source_mount_cannot_give_is_InvalidArgument()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_f.Dir, "private")).FullName;
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(c =>
            c.Mounts.Add(new CriMount { HostPath = dir, ContainerPath = "/s", Propagation = MountPropagation.PropagationHostToContainer })));
        Assert.Equal("config.mounts[0].propagation", e.Field);
        _f.Host.Propagations[dir] = Propagation.Slave;
        _f.Build(c => c.Mounts.Add(new CriMount { HostPath = dir, ContainerPath = "/s", Propagation = MountPropagation.PropagationHostToContainer }));
        Assert.Throws<InvalidArgumentException>(() => _f.Build(c =>
            c.Mounts.Add(new CriMount { HostPath = dir, ContainerPath = "/s", Propagation = MountPropagation.PropagationBidirectional })));
    }

    [Fact]
    public void Mounts_are_ordered_shallowest_first_and_replace_a_default_at_the_same_destination()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_f.Dir, "d")).FullName;
        var spec = _f.Build(c =>
        {
            c.Mounts.Add(new CriMount { HostPath = dir, ContainerPath = "/a/b/c" });
            c.Mounts.Add(new CriMount { HostPath = dir, ContainerPath = "/a" });
            c.Mounts.Add(new CriMount { HostPath = dir, ContainerPath = "/etc/hostname" });
        });
        var destinations = spec.Mounts!.Select(m => m.Destination).ToList();
        Assert.True(destinations.IndexOf("/a") < destinations.IndexOf("/a/b/c"));
        Assert.Equal(dir, Assert.Single(spec.Mounts!, m => m.Destination == "/etc/hostname").Source);
    }

    [Fact]
    public void A_dev_of_the_configs_own_replaces_everything_under_dev()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_f.Dir, "dev")).FullName;
        var spec = _f.Build(c => c.Mounts.Add(new CriMount { HostPath = dir, ContainerPath = "/dev" }));
        Assert.Equal(dir, Assert.Single(spec.Mounts!, m => m.Destination.StartsWith("/dev", StringComparison.Ordinal)).Source);
    }

    [Theory]
    [InlineData("relative", "/data", "config.mounts[0].host_path")]
    [InlineData("/data", "relative", "config.mounts[0].container_path")]
    [InlineData("/data", "/", "config.mounts[0].container_path")]
    [InlineData("/data", "/x/..", "config.mounts[0].container_path")]
    [InlineData("/data", "/proc", "config.mounts[0].container_path")]
    [InlineData("/data", "/proc/sys/kernel", "config.mounts[0].container_path")]
    public void A_mount_that_would_break_the_container_is_InvalidArgument(string host, string container, string field)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Mounts.Add(new CriMount { HostPath = host, ContainerPath = container })));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void Lxcfs_files_may_be_bound_over_proc()
    {
        var file = Path.Combine(_f.Dir, "meminfo");
        File.WriteAllText(file, "");
        var spec = _f.Build(c => c.Mounts.Add(new CriMount { HostPath = file, ContainerPath = "/proc/meminfo", Readonly = true }));
        Assert.Contains(spec.Mounts!, m => m.Destination == "/proc/meminfo" && m.Source == file);
    }

    [Fact]
    public void Image_volumes_get_folders_of_the_containers_own_unless_a_CRI_mount_covers_them()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_f.Dir, "cache")).FullName;
        var spec = _f.Build(c => c.Mounts.Add(new CriMount { HostPath = dir, ContainerPath = "/cache" }),
            image: SpecFixture.Image(i => i.Volumes = ["/var/lib/data", "cache", "/var/lib/data/"]));
        var volume = Assert.Single(spec.Mounts!, m => m.Destination == "/var/lib/data");
        Assert.StartsWith(Path.Combine(_f.Dir, "volumes") + "/", volume.Source);
        Assert.True(Directory.Exists(volume.Source));
        Assert.Contains("rw", volume.Options!);
        Assert.Equal(dir, Assert.Single(spec.Mounts!, m => m.Destination == "/cache").Source);
    }

    [Fact]
    public void A_device_is_created_with_the_hosts_numbers_and_allowed_with_the_configs_permissions()
    {
        var spec = _f.Build(c =>
        {
            c.Devices.Add(new Device { HostPath = "/dev/fuse", ContainerPath = "/dev/fuse", Permissions = "rw" });
            c.Devices.Add(new Device { HostPath = "/dev/loop0", Permissions = "mrw" });
        });
        var fuse = Assert.Single(spec.Linux!.Devices!, d => d.Path == "/dev/fuse");
        Assert.Equal(("c", 10L, 229L, 0x1b6u), (fuse.Type, fuse.Major, fuse.Minor, fuse.FileMode ?? 0));
        var loop = Assert.Single(spec.Linux.Devices!, d => d.Path == "/dev/loop0");
        Assert.Equal(("b", 6u), (loop.Type, loop.Gid ?? 0));
        var rules = spec.Linux.Resources!.Devices!;
        Assert.Equal((false, "rwm"), (rules[0].Allow, rules[0].Access));
        Assert.Contains(rules, r => r is { Allow: true, Type: "c", Major: 10, Minor: 229, Access: "rw" });
        Assert.Contains(rules, r => r is { Allow: true, Type: "b", Major: 7, Minor: 0, Access: "mrw" });
    }

    [Theory]
    [InlineData("/dev/nope", "rw", "config.devices[0].host_path")]
    [InlineData("/etc", "rw", "config.devices[0].host_path")]
    [InlineData("dev/fuse", "rw", "config.devices[0].host_path")]
    [InlineData("/dev/fuse", "rwx", "config.devices[0].permissions")]
    [InlineData("/dev/fuse", "rr", "config.devices[0].permissions")]
    public void A_device_that_is_not_one_is_InvalidArgument(string host, string permissions, string field)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => _f.Build(c => c.Devices.Add(new Device { HostPath = host, Permissions = permissions })));
        Assert.Equal(field, e.Field);
    }
}
