using System.Security.Cryptography;
using Crid.Core.Configuration;
using Crid.Core.Errors;
using Crid.Core.Oci;
using Crid.Core.Sandboxes;
using Crid.Core.Storage;
using Crid.Core.Stores;
using Crid.Linux;
using Runtime.V1;
using RuntimeCreate = Crid.Core.Containers.CreateContainerRequest;

namespace Crid.Core.Containers;

public sealed partial class ContainerManager
{
    /// <summary>
    /// CreateContainer: validate, then, under the sandbox's lock (no Stop or Remove of the pod
    /// meanwhile), reserve the name, create the log folder, start the runtime's monitor and, while
    /// it starts, hold the image's layers, mount the rootfs overlay and build the spec into the
    /// bundle, have the runtime create the container, and only then write the record and make
    /// the container visible. Whatever fails, everything done
    /// so far is undone in reverse order. The work does not stop when the client gives up
    /// (<paramref name="cancel"/> only ends the wait): a retry with the same request gets the
    /// container it made (see <see cref="PendingCreations{T}"/>).
    /// </summary>
    public Task<Container> CreateAsync(Runtime.V1.CreateContainerRequest request, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.PodSandboxId.Length == 0)
            throw new InvalidArgumentException("pod_sandbox_id", "a sandbox id is required");
        ContainerSpecs.Validate(request.Config);
        CheckLogPath(request.Config.LogPath);
        var sandbox = _sandboxes.Get(request.PodSandboxId);
        var name = NameOf(request.Config.Metadata, sandbox.Config.Metadata);
        return _creations.RunAsync(name, request, () => CreateCoreAsync(request.Config, sandbox, name), cancel);
    }

    /// <summary>CRI: log_path is relative to the pod's log_directory; it must stay inside it.</summary>
    private static void CheckLogPath(string logPath)
    {
        if (logPath.Length == 0)
            return;
        if (logPath.StartsWith('/') || logPath.Contains('\0') || logPath.Split('/').Any(p => p is ".." or "."))
            throw new InvalidArgumentException("config.log_path",
                $"\"{SandboxValidator.Printable(logPath)}\" is not a relative path inside the pod's log directory");
    }

    private async Task<Container> CreateCoreAsync(ContainerConfig config, Sandbox sandbox, string name)
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var undo = new Stack<(string Step, Func<Task> Action)>();
        var step = "wait for the sandbox";
        Task? bundle = null;
        var bundleStep = "make the container's folders";
        // The creation runs detached from the call: it waits for a Stop or Remove of the pod in
        // progress, and then finds the pod not ready.
        await sandbox.Lock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (sandbox.Removed)
                throw new NotFoundException($"sandbox {sandbox.Id} was removed");
            var pod = PodSpecContext.From(sandbox);
            _names.Reserve(name, id);
            undo.Push(("release the name", () => { _names.Release(name, id); return Task.CompletedTask; }));

            step = "find the image";
            var image = _images.Find(config.Image.Image)
                ?? throw new NotFoundException($"image \"{SandboxValidator.Printable(config.Image.Image)}\" is not present: pull it first");
            var runtime = _runtimes.For(sandbox.RuntimeHandler);
            var stopSignal = StopSignals.Of(config, image.Config.StopSignal);
            var target = TargetPidNamespace(config, sandbox);
            var logPath = LogPathOf(sandbox, config);

            step = "make the container folder";
            var dir = Path.Combine(ContainersDir, id);
            // Traversable (0711): a container in a pod user namespace is set up by runc as the
            // namespace's root, who must reach the rootfs and the bind sources below it.
            Directory.CreateDirectory(dir, TraversableDir);
            undo.Push(("delete the container folder", () => BlockingCalls.RunAsync(() => { DeleteContainerDir(dir); return 0; })));
            var container = new Container
            {
                Id = id,
                Name = name,
                SandboxId = sandbox.Id,
                Config = config,
                CreatedAt = NowNs(),
                ImageId = image.Id,
                ImageName = image.RepoTags.Count > 0 ? image.RepoTags[0] : config.Image.Image,
                ImageRef = image.RepoDigests.Count > 0 ? image.RepoDigests[0] : image.Id,
                RuntimeHandler = sandbox.RuntimeHandler,
                LogPath = logPath,
                StopSignal = stopSignal,
                Dir = dir,
                Status = ContainerRecord.NewStatus(dir, new ContainerStatus { State = ContainerState.Created, Resources = config.Linux?.Resources?.Clone() }),
            };
            // The monitor opens its log file as it starts.
            if (logPath.Length > 0)
            {
                step = "make the log folder";
                foreach (var made in MakeFolders(Path.GetDirectoryName(logPath)!))
                    undo.Push(("delete the log folder it made", () => { TryDeleteEmptyFolder(made); return Task.CompletedTask; }));
            }

            // The image's hold, the rootfs and the spec are made while the monitor starts (see
            // BundleReady): the monitor's exec and start-up then cost the call nothing. The monitor
            // only waits meanwhile; until it is let go, it has run nothing but its own start-up.
            // The spec comes after the mount: users and groups are looked up in the image's
            // /etc/passwd and /etc/group.
            var idMap = IdMapOf(pod);
            async Task PrepareBundleAsync()
            {
                foreach (var sub in new[] { container.RootfsPath, container.UpperDir })
                    Directory.CreateDirectory(sub, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
                Directory.CreateDirectory(container.WorkDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

                bundleStep = "hold the image's layers";
                var layers = _images.Retain(id, image.Id);
                undo.Push(("release the image's layers", () => { _images.Release(id); return Task.CompletedTask; }));

                bundleStep = "mount the root filesystem";
                await BlockingCalls.RunAsync(() =>
                {
                    OverlayMount.Mount(container.RootfsPath, layers, container.UpperDir, container.WorkDir, container.LayersDir, idMap);
                    return 0;
                }).ConfigureAwait(false);
                undo.Push(("unmount the root filesystem", () => BlockingCalls.RunAsync(() => { OverlayMount.Unmount(container.RootfsPath); return 0; })));

                bundleStep = "build the spec";
                var spec = ContainerSpecs.Build(new ContainerSpecRequest
                {
                    Id = id,
                    Config = config,
                    Pod = pod,
                    Image = image,
                    RootfsPath = container.RootfsPath,
                    VolumesDir = container.VolumesDir,
                    TargetPidNamespace = target,
                    DefaultCgroupParent = _options.DefaultCgroupParent,
                    PidsLimit = _options.PidsLimit > 0 ? _options.PidsLimit : null,
                }, _host);
                AtomicFiles.Write(container.SpecPath, ContainerSpecs.Serialize(spec), AtomicFiles.PrivateFile, durable: false);
                // The image's volumes are the container's to write, as its rootfs is.
                if (idMap is not null && Directory.Exists(container.VolumesDir))
                    foreach (var volume in Directory.EnumerateDirectories(container.VolumesDir))
                        HostFiles.SetOwner(volume, idMap.RootUid, idMap.RootGid);

                if (ContainerSpecs.ImageVolumeMounts(spec, container.VolumesDir) is { Count: > 0 } volumes)
                {
                    // containerd's behaviour: an image VOLUME starts with what the image has at that path.
                    // The folders are the container's own: the folder's undo above deletes them.
                    bundleStep = "copy the image's content into its volumes";
                    await BlockingCalls.RunAsync(() =>
                    {
                        foreach (var (destination, source) in volumes)
                            VolumeContent.Copy(container.RootfsPath, destination, source);
                        return 0;
                    }).ConfigureAwait(false);
                }
            }

            step = "create the container in the runtime";
            bundle = Task.Run(PrepareBundleAsync);
            var created = await runtime.CreateAsync(new RuntimeCreate
            {
                Id = id,
                BundlePath = dir,
                LogPath = container.MonitorLogPath,
                Name = name,
                Terminal = config.Tty,
                Stdin = config.Stdin,
                StdinOnce = config.StdinOnce,
                BundleReady = bundle,
            }, CancellationToken.None).ConfigureAwait(false);
            undo.Push(("delete the container in the runtime", () => runtime.DeleteAsync(id, CancellationToken.None)));

            step = "write the container record";
            TestCrash.At(_options, TestCrash.CreateBeforeRecord);
            container.Status.Update(s => s with { Pid = created.Pid });
            ContainerRecord.Write(container);
            _containers.Add(container);
            ContainerLog.Created(_log, id, name, sandbox.Id);
            _events?.Created(id, sandbox.Id);
            return container;
        }
        catch (Exception e)
        {
            if (bundle is not null)
            {
                // The bundle's undo steps are on the stack once it is over; its own failure is named by its step.
                try { await bundle.ConfigureAwait(false); }
                catch (Exception) when (bundle.IsFaulted) { }
                if (bundle.Exception?.InnerException == e)
                    step = bundleStep;
            }
            var error = Translate(e, step);
            if (error is CriException and not RuntimeFailureException)
                ContainerLog.CreateRefused(_log, name, step, error.Message);
            else
                ContainerLog.CreateFailed(_log, e, name, step);
            while (undo.TryPop(out var u))
            {
                try { await u.Action().ConfigureAwait(false); }
                catch (Exception rollback) { ContainerLog.RollbackFailed(_log, rollback, id, u.Step); }
            }
            throw error;
        }
        finally
        {
            sandbox.Lock.Release();
        }
    }

    /// <summary>
    /// A pod with its own user namespace gets id-mapped layers (see <see cref="OverlayMount"/>):
    /// its pin, and the host ids of its root, which own the writable layer. Null for the host's ids.
    /// </summary>
    private static OverlayIdMap? IdMapOf(PodSpecContext pod)
    {
        if (!pod.Pins.TryGetValue("user", out var pin))
            return null;
        // The sandbox validator refuses a pod user namespace that leaves 0 unmapped.
        var root = PodSpec.MappedRoot(pod.NamespaceOptions)
            ?? throw new FailedPreconditionException($"sandbox {pod.Id}'s user namespace does not map uid and gid 0");
        return new OverlayIdMap(pin, root.Uid, root.Gid);
    }

    /// <summary>
    /// pid mode TARGET: the pid namespace of a running container of the same pod (containerd:
    /// /proc/&lt;its pid&gt;/ns/pid). Null when there is none; the spec then names the field.
    /// </summary>
    private string? TargetPidNamespace(ContainerConfig config, Sandbox sandbox)
    {
        var ns = config.Linux?.SecurityContext?.NamespaceOptions;
        if (ns is not { Pid: NamespaceMode.Target } || ns.TargetId.Length == 0)
            return null;
        var target = _containers.Find(ns.TargetId, "config.linux.security_context.namespace_options.target_id");
        if (target is null || target.SandboxId != sandbox.Id)
            return null;
        var status = target.Status.Get();
        return status.State == ContainerState.Running && status.Pid > 0 ? $"/proc/{status.Pid}/ns/pid" : null;
    }

    /// <summary>The log file on the host: &lt;pod log_directory&gt;/&lt;log_path&gt;, or "" when either is unset.</summary>
    private static string LogPathOf(Sandbox sandbox, ContainerConfig config)
    {
        var dir = sandbox.Config.LogDirectory;
        if (dir.Length == 0 || config.LogPath.Length == 0)
            return "";
        if (!dir.StartsWith('/'))
            throw new FailedPreconditionException($"sandbox {sandbox.Id}'s log_directory \"{SandboxValidator.Printable(dir)}\" is not an absolute path");
        return Path.Combine(dir, config.LogPath);
    }

    /// <summary>mkdir -p; returns the folders it made, outermost first, so a rollback removes exactly those.</summary>
    private static List<string> MakeFolders(string dir)
    {
        var missing = new List<string>();
        for (var d = dir; d is not null && !Directory.Exists(d); d = Path.GetDirectoryName(d))
            missing.Add(d);
        missing.Reverse();
        foreach (var d in missing)
            Directory.CreateDirectory(d);
        return missing;
    }

    private static void TryDeleteEmptyFolder(string dir)
    {
        try
        {
            if (Directory.Exists(dir) && !Directory.EnumerateFileSystemEntries(dir).Any())
                Directory.Delete(dir);
        }
        catch (IOException)
        {
            // Someone else put something there meanwhile: it stays.
        }
    }

    /// <summary>
    /// Deletes a container's folder, unmounting its rootfs first: a recursive delete would otherwise
    /// walk into the mounted overlay (whiting out the image's files in the upper layer it is about
    /// to delete anyway) and then fail on the mount point.
    /// </summary>
    internal static void DeleteContainerDir(string dir)
    {
        OverlayMount.Unmount(Path.Combine(dir, "rootfs"));
        if (Directory.Exists(dir))
            Directory.Delete(dir, recursive: true);
    }

    /// <summary>Host-side failures keep their cause in the message; a value the kernel refuses is the caller's error.</summary>
    private static Exception Translate(Exception e, string step) => e switch
    {
        CriException => e,
        ArgumentException a => new InvalidArgumentException("config", a.Message),
        IOException or UnauthorizedAccessException => new RuntimeFailureException($"{step}: {e.Message}", e),
        _ => e,
    };
}
