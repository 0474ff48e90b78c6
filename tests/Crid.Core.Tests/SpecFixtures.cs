using Crid.Core.Images;
using Crid.Core.Oci;
using Runtime.V1;

namespace Crid.Core.Tests;

/// <summary>A host as a test wants it: this machine's capabilities minus CAP_SYS_RESOURCE, hybrid cgroups, no AppArmor.</summary>
internal sealed class FakeHostFacts : IHostFacts
{
    public IReadOnlyList<string> BoundingCapabilities { get; set; } = [.. CapabilityNames.All.Where(c => c != "CAP_SYS_RESOURCE")];

    public int MinOomScoreAdj { get; set; }

    public CgroupFacts Cgroups { get; set; } = new()
    {
        Unified = false,
        Hugetlb = false,
        Swap = true,
        HugePageSizes = new HashSet<string> { "2MB", "1GB" },
        OnlineCpus = "0-1",
        OnlineMems = "0",
    };

    public bool SeccompEnabled { get; set; } = true;

    public bool AppArmorEnabled { get; set; }

    public Dictionary<string, HostNode> Nodes { get; } = new()
    {
        ["/dev/null"] = new HostNode('c', 1, 3, 0x1b6, 0, 0),
        ["/dev/fuse"] = new HostNode('c', 10, 229, 0x1b6, 0, 0),
        ["/dev/loop0"] = new HostNode('b', 7, 0, 0x1b0, 0, 6),
        ["/etc"] = new HostNode('d', 0, 0, 0x1ed, 0, 0),
    };

    public Dictionary<string, Propagation> Propagations { get; } = new();

    public Dictionary<string, byte[]> Profiles { get; } = new();

    public HostNode? Stat(string path) => Nodes.TryGetValue(path, out var n) ? n : null;

    public IEnumerable<HostDevice> HostDevices() =>
        Nodes.Where(n => n.Value.Type is 'c' or 'b').Select(n => new HostDevice(n.Key, n.Value));

    // Real folders under the test's temp dir: creation and symlink resolution need no root.
    public string PrepareBindSource(string path) => LinuxHostFacts.Instance.PrepareBindSource(path);

    public Propagation PropagationOf(string realPath) =>
        Propagations.Where(p => realPath == p.Key || realPath.StartsWith(p.Key + "/", StringComparison.Ordinal))
            .OrderByDescending(p => p.Key.Length).Select(p => p.Value).FirstOrDefault(Propagation.Private);

    public byte[]? ReadProfile(string path) => Profiles.GetValueOrDefault(path);
}

/// <summary>Pods, images and root filesystems for spec tests; everything lives in one temp folder.</summary>
internal sealed class SpecFixture : IDisposable
{
    public static readonly IDMapping Mapping = new() { ContainerId = 0, HostId = 100000, Length = 65536 };

    public string Dir { get; } = Directory.CreateTempSubdirectory("crid-spec-").FullName;

    public FakeHostFacts Host { get; } = new();

    public string Rootfs { get; }

    public SpecFixture()
    {
        Rootfs = Path.Combine(Dir, "rootfs");
        Directory.CreateDirectory(Path.Combine(Rootfs, "etc"));
        File.WriteAllText(Path.Combine(Rootfs, "etc", "passwd"),
            "root:x:0:0:root:/root:/bin/sh\n" +
            "# a comment\n" +
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
            "default-user:x:1000:1000::/home/default-user:/bin/sh\n" +
            "broken line\n" +
            "www:x:33:33::/var/www:/bin/false\n");
        File.WriteAllText(Path.Combine(Rootfs, "etc", "group"),
            "root:x:0:\n" +
            "nogroup:x:65534:\n" +
            "default-user:x:1000:\n" +
            "group-defined-in-image:x:50000:default-user\n" +
            "audio:x:29:www,default-user\n" +
            "www:x:33:\n");
    }

    public void Dispose() => Directory.Delete(Dir, recursive: true);

    public PodSpecContext Pod(NamespaceMode pid = NamespaceMode.Pod, NamespaceMode network = NamespaceMode.Pod,
        NamespaceMode ipc = NamespaceMode.Pod, bool userns = false, string cgroupParent = "", bool privileged = false)
    {
        var ns = new NamespaceOption { Pid = pid, Network = network, Ipc = ipc };
        if (userns)
            ns.UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { Mapping }, Gids = { Mapping } };
        var pins = new Dictionary<string, string>();
        void Pin(string type) => pins[type] = $"/run/crid-test/{type}ns/9c1dc503";
        if (network == NamespaceMode.Pod)
            Pin("net");
        if (ipc == NamespaceMode.Pod)
            Pin("ipc");
        Pin("uts");
        if (userns)
            Pin("user");
        if (pid == NamespaceMode.Pod)
            Pin("pid");
        return new PodSpecContext
        {
            Id = "0123abcd",
            Config = new PodSandboxConfig
            {
                Metadata = new PodSandboxMetadata { Name = "web", Namespace = "prod", Uid = "uid-1", Attempt = 2 },
                Hostname = "web-host",
                Annotations = { ["example.com/pod-only"] = "yes" },
                Linux = new LinuxPodSandboxConfig
                {
                    CgroupParent = cgroupParent,
                    SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = ns, Privileged = privileged },
                    Sysctls = { ["net.core.somaxconn"] = "1024" },
                },
            },
            Hostname = "web-host",
            Pins = pins,
            Dir = Path.Combine(Dir, "sandboxes", "0123abcd"),
        };
    }

    public static ContainerImage Image(Action<ImageConfigBuilder>? edit = null)
    {
        var b = new ImageConfigBuilder();
        edit?.Invoke(b);
        return new ContainerImage
        {
            Id = "sha256:" + new string('a', 64),
            RepoTags = ["docker.io/library/busybox:latest"],
            RepoDigests = [],
            Config = new ImageRuntimeConfig
            {
                User = b.User,
                Env = b.Env,
                Entrypoint = b.Entrypoint,
                Cmd = b.Cmd,
                WorkingDir = b.WorkingDir,
                Volumes = b.Volumes,
            },
        };
    }

    public sealed class ImageConfigBuilder
    {
        public string User { get; set; } = "";
        public List<string> Env { get; set; } = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
        public List<string> Entrypoint { get; set; } = [];
        public List<string> Cmd { get; set; } = ["sh"];
        public string WorkingDir { get; set; } = "";
        public List<string> Volumes { get; set; } = [];
    }

    public static ContainerConfig Config(Action<ContainerConfig>? edit = null)
    {
        var c = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = "app", Attempt = 1 },
            Image = new ImageSpec { Image = "busybox" },
            Linux = new LinuxContainerConfig { SecurityContext = new LinuxContainerSecurityContext() },
        };
        edit?.Invoke(c);
        return c;
    }

    public Spec Build(ContainerConfig config, PodSpecContext? pod = null, ContainerImage? image = null, string? target = null) =>
        ContainerSpecs.Build(new ContainerSpecRequest
        {
            Id = "c0ffee",
            Config = config,
            Pod = pod ?? Pod(),
            Image = image ?? Image(),
            RootfsPath = Rootfs,
            VolumesDir = Path.Combine(Dir, "volumes"),
            TargetPidNamespace = target,
        }, Host);

    public Spec Build(Action<ContainerConfig> edit, PodSpecContext? pod = null, ContainerImage? image = null) =>
        Build(Config(edit), pod, image);
}
