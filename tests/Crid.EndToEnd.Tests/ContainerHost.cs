using Crid.Core.Configuration;
using Crid.Core.Containers;
using Crid.Core.Errors;
using Crid.Core.Images;
using Crid.Core.Networking;
using Crid.Core.Sandboxes;
using Crid.Runtime;
using Crid.Server;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;
using Container = Crid.Core.Containers.Container;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// The daemon's domain in process, over folders of the test's own: the real SandboxManager (pods
/// with pinned namespaces and infra processes), the real conmon + runc driver, the real overlay
/// rootfs, and an image store that is a folder of layers (<see cref="FolderImages"/>). Restart()
/// drops every object and builds them again over the same folders, as a daemon restart does.
/// Disposing removes every pod (and so every container) and then asserts the machine is as it was.
/// </summary>
internal sealed class ContainerHost : IAsyncDisposable
{
    private ContainerHost(string dir)
    {
        Dir = dir;
        RuntimeRoot = DaemonProcess.ShortRuntimeRoot();
        CgroupParent = "/crid-e2e-" + Guid.NewGuid().ToString("N")[..10];
        // A pod user namespace's root must reach the rootfs (see RuncPodTests).
        File.SetUnixFileMode(dir, (UnixFileMode)0x1ed);
        Options = new CridOptions
        {
            StateDir = Path.Combine(dir, "state"),
            NamespacesDir = Path.Combine(dir, "ns"),
            CniConfDir = Path.Combine(dir, "net.d"),
            RuntimeRoot = RuntimeRoot,
            DefaultCgroupParent = CgroupParent,
        };
        Directory.CreateDirectory(Options.StateDir);
        Images = new FolderImages(Path.Combine(dir, "layers"));
    }

    public string Dir { get; }

    public string RuntimeRoot { get; }

    public string CgroupParent { get; }

    public CridOptions Options { get; private set; }

    public FolderImages Images { get; }

    public SandboxManager Sandboxes { get; private set; } = null!;

    public ContainerRuntimes Runtimes { get; private set; } = null!;

    public ContainerManager Containers { get; private set; } = null!;

    public string LogDir => Path.Combine(Dir, "logs");

    public static async Task<ContainerHost> StartAsync()
    {
        var host = new ContainerHost(Directory.CreateTempSubdirectory("crid-ctr-").FullName);
        await host.BuildAsync();
        return host;
    }

    /// <summary>Everything dropped and built again over the same folders; containers keep running meanwhile.</summary>
    public async Task RestartAsync(Action? whileDown = null)
    {
        Down();
        whileDown?.Invoke();
        await BuildAsync();
    }

    private void Down()
    {
        Containers.Dispose();
        Runtimes.Dispose();
        Sandboxes.Dispose();
    }

    private async Task BuildAsync()
    {
        Sandboxes = new SandboxManager(Options, NullLogger<SandboxManager>.Instance, new InfraCommand(RepoPaths.Daemon, ["crid-pause", "pause"]),
            new PodNetwork(Options, NullLogger<PodNetwork>.Instance));
        Runtimes = new ContainerRuntimes(Options.Handlers().ToDictionary(h => h.Name,
            h => (IContainerRuntime)new ConmonRuntime(ServerSetup.RuntimeOptionsOf(Options, h))));
        Containers = new ContainerManager(Options, NullLogger<ContainerManager>.Instance, Sandboxes, Images, Runtimes);
        await Sandboxes.RecoverAsync();
        await Containers.RecoverAsync(CancellationToken.None);
    }

    /// <summary>A ready pod with a log directory.</summary>
    public async Task<Sandbox> PodAsync(string name, NamespaceMode pid = NamespaceMode.Pod, Action<PodSandboxConfig>? adjust = null)
    {
        var config = SandboxTests.Minimal(name, pid);
        config.LogDirectory = Path.Combine(LogDir, name);
        adjust?.Invoke(config);
        return await Sandboxes.RunAsync(new RunPodSandboxRequest { Config = config }, CancellationToken.None);
    }

    /// <summary>A container config running <paramref name="script"/> with /bin/sh in the test image, logging to &lt;name&gt;.log.</summary>
    public static ContainerConfig Shell(string name, string script, Action<ContainerConfig>? adjust = null)
    {
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = name },
            Image = new ImageSpec { Image = FolderImages.BusyboxTag },
            Command = { "/bin/sh", "-c", script },
            LogPath = name + ".log",
            Linux = new LinuxContainerConfig(),
        };
        adjust?.Invoke(config);
        return config;
    }

    public Task<Container> CreateAsync(Sandbox pod, ContainerConfig config) =>
        Containers.CreateAsync(new global::Runtime.V1.CreateContainerRequest { PodSandboxId = pod.Id, Config = config, SandboxConfig = pod.Config }, Timeout());

    /// <summary>Creates and starts.</summary>
    public async Task<Container> RunAsync(Sandbox pod, ContainerConfig config)
    {
        var c = await CreateAsync(pod, config);
        await Containers.StartAsync(c.Id, Timeout());
        return c;
    }

    /// <summary>Waits until the container's status says EXITED.</summary>
    public static async Task<Core.Containers.ContainerStatus> ExitedAsync(Container c, int seconds = 30)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        while (c.Status.Get().State != Core.Containers.ContainerState.Exited)
            await Task.Delay(20, cts.Token);
        return c.Status.Get();
    }

    public static CancellationToken Timeout(int seconds = 60) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;

    /// <summary>What a removed container must never leave: rootfs mounts, monitors, runc state, cgroups, files, image holds.</summary>
    public List<string> Leftovers()
    {
        var found = new List<string>();
        found.AddRange(Cleanup.MountsUnder(Path.Combine(Options.StateDir, "containers")).Select(m => "mount " + m));
        found.AddRange(Cleanup.ProcessesNaming(RuntimeRoot).Select(p => "process " + p));
        found.AddRange(Cleanup.CgroupsUnder(CgroupParent).Where(cg => Directory.EnumerateDirectories(cg).Any() || File.ReadAllText(Path.Combine(cg, "cgroup.procs")).Length > 0).Select(cg => "cgroup " + cg));
        foreach (var handler in Directory.Exists(RuntimeRoot) ? Directory.EnumerateDirectories(RuntimeRoot) : [])
        {
            var runc = Path.Combine(handler, "runc");
            if (Directory.Exists(runc))
                found.AddRange(Directory.EnumerateDirectories(runc).Select(d => "runc state " + d));
            foreach (var sub in new[] { "exits", "attach", "containers" })
            {
                var path = Path.Combine(handler, sub);
                if (Directory.Exists(path))
                    found.AddRange(Directory.EnumerateFileSystemEntries(path).Select(e => "runtime file " + e));
            }
        }
        var containers = Path.Combine(Options.StateDir, "containers");
        if (Directory.Exists(containers))
            found.AddRange(Directory.EnumerateFileSystemEntries(containers).Select(e => "container folder " + e));
        found.AddRange(Images.Holds.Keys.Select(k => "image hold " + k));
        return found;
    }

    public async ValueTask DisposeAsync()
    {
        List<string> left;
        try
        {
            foreach (var pod in Sandboxes.List(null).ToList())
                await Sandboxes.RemoveAsync(pod.Id, Timeout());
            left = Leftovers();
            // The pods' pins and /dev/shm too, now that they are removed.
            left.AddRange(Cleanup.MountsUnder(Dir).Select(m => "mount " + m));
        }
        finally
        {
            Down();
            await Cleanup.RemoveTreeAsync(Dir, Options.NamespacesDir);
            await Cleanup.RemoveRuntimeRootAsync(RuntimeRoot);
            Cleanup.RemoveCgroups(CgroupParent);
        }
        Assert.True(left.Count == 0, "left behind: " + string.Join("; ", left));
    }
}

/// <summary>
/// An image store that is a folder of unpacked layers: one busybox image (the static busybox with
/// its applets and critest's accounts) and whatever a test adds. Holds are kept in memory.
/// </summary>
internal sealed class FolderImages : IContainerImages
{
    public const string BusyboxTag = "docker.io/library/busybox:latest";
    private readonly string _dir;
    private readonly Dictionary<string, (ContainerImage Image, IReadOnlyList<string> Layers)> _images = new(StringComparer.Ordinal);

    public FolderImages(string dir)
    {
        _dir = dir;
        var rootfs = Path.Combine(dir, "busybox");
        TestRootfs.Build(rootfs, ["sh", "cat", "echo", "sleep", "true", "false", "id", "ls", "touch", "hostname", "readlink", "ps",
            "grep", "head", "tr", "mkdir", "stat", "kill", "wc", "dd", "seq", "env", "pwd", "mount"]);
        Add(TestRootfs.Image, rootfs);
    }

    /// <summary>Container id to image id, for every hold not released.</summary>
    public Dictionary<string, string> Holds { get; } = new(StringComparer.Ordinal);

    /// <summary>An image of <paramref name="layers"/> (top-most first) under its first tag.</summary>
    public void Add(ContainerImage image, params string[] layers)
    {
        lock (_images)
            _images[image.Id] = (image, layers);
    }

    public string NewLayer(string name) => Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;

    public ContainerImage? Find(string reference)
    {
        lock (_images)
            return _images.Values.FirstOrDefault(i => i.Image.Id == reference || i.Image.RepoTags.Contains(reference)).Image;
    }

    public IReadOnlyList<string> Retain(string containerId, string imageId)
    {
        lock (_images)
        {
            if (!_images.TryGetValue(imageId, out var image))
                throw new NotFoundException($"image {imageId} is not present");
            Holds[containerId] = imageId;
            return image.Layers;
        }
    }

    public void Release(string containerId)
    {
        lock (_images)
            Holds.Remove(containerId);
    }

    public void ReleaseAllExcept(IReadOnlySet<string> liveContainerIds)
    {
        lock (_images)
        {
            foreach (var id in Holds.Keys.Where(k => !liveContainerIds.Contains(k)).ToList())
                Holds.Remove(id);
        }
    }
}
