using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Crid.Core.Configuration;
using Crid.Core.Errors;
using Crid.Core.Networking;
using Crid.Core.Oci;
using Crid.Core.Storage;
using Crid.Core.Stores;
using Crid.Linux;
using Runtime.V1;

namespace Crid.Core.Sandboxes;

public sealed partial class SandboxManager
{
    /// <summary>
    /// RunPodSandbox: validate, reserve the name, record the pins' uuid, pin the namespaces (and,
    /// meanwhile, make the sandbox's folder, /dev/shm and files), attach the pod network, start the
    /// infra process when the pod shares a pid namespace, write the record, and only then make the
    /// sandbox visible. Whatever fails, everything done so far is undone in reverse
    /// order. The work does not stop when the client gives up (<paramref name="cancel"/> only ends the
    /// wait): a retry with the same config gets the sandbox it made (see <see cref="PendingCreations{T}"/>).
    /// </summary>
    public Task<Sandbox> RunAsync(RunPodSandboxRequest request, CancellationToken cancel)
    {
        SandboxValidator.Validate(request, _options);
        return _creations.RunAsync(NameOf(request.Config.Metadata), request, () => CreateAsync(request), cancel);
    }

    private async Task<Sandbox> CreateAsync(RunPodSandboxRequest request)
    {
        var config = request.Config;
        var ns = config.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption();
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var uuid = Guid.NewGuid().ToString("D");
        var name = NameOf(config.Metadata);
        var hostname = config.Hostname.Length > 0 ? config.Hostname
            : ns.Network == NamespaceMode.Node ? Environment.MachineName
            : id[..12];

        _names.Reserve(name, id);
        var undo = new Stack<(string Step, Func<Task> Action)>();
        undo.Push(("release the name", () => { _names.Release(name, id); return Task.CompletedTask; }));
        var step = "record the pins' uuid";
        Task<PodNamespacesResult>? pinning = null;
        try
        {
            // Network NODE has no pin of its own and skips CNI. The network is chosen now, for the
            // record below: its netns pin path follows from the uuid.
            var podNetwork = ns.Network != NamespaceMode.Node ? _network.Current() : null;
            var networkIntent = podNetwork is null ? null
                : PodNetwork.Intend(id, config, PinnedNamespace.PathFor(_options.NamespacesDir, "net", uuid), podNetwork);
            // Before the first pin exists and before the ADD: a crash from here on leaves pins and a
            // network that recovery knows are crid's, and knows how to DEL, though no record says so.
            _intents.Record(uuid, id, networkIntent);
            undo.Push(("drop the pins' uuid record", () => { _intents.Remove(uuid); return Task.CompletedTask; }));

            step = "pin namespaces";
            pinning = BlockingCalls.RunAsync(() => PinNamespaces(config, ns, hostname, uuid));

            // While the namespaces are pinned: the folder, the pod's /dev/shm and the files, which need
            // the pins' paths only, and those follow from the uuid. Nothing trusts the folder before
            // its record, written last (recovery deletes a folder without one), so its files are
            // written in place, without temporaries.
            var dir = Path.Combine(SandboxesDir, id);
            var pins = PinPaths(ns, uuid);
            var pod = new PodSpecContext { Id = id, Config = config, Hostname = hostname, Pins = pins, Dir = dir };
            step = "write the sandbox files";
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            undo.Push(("delete the sandbox folder", () => { DeleteSandboxDir(dir); return Task.CompletedTask; }));
            if (ns.Ipc != NamespaceMode.Node)
            {
                step = "mount the pod's /dev/shm";
                PodShm.Mount(pod.ShmPath, owner: PodSpec.MappedRoot(ns));
            }
            step = "write the sandbox files";
            WritePodFiles(pod);

            step = "pin namespaces";
            var waiting = pinning;
            pinning = null;
            var pinned = await waiting.ConfigureAwait(false);
            undo.Push(("remove the pins", () => { RemovePins(pinned.Pins.Select(p => p.Path)); return Task.CompletedTask; }));
            if (pinned.Pins.Count != pins.Count - (ns.Pid == NamespaceMode.Pod ? 1 : 0))
                throw new InvalidOperationException($"{pinned.Pins.Count} namespaces were pinned, not the {pins.Count} expected");
            foreach (var pin in pinned.Pins)
            {
                if (pins.GetValueOrDefault(pin.Type) != pin.Path)
                    throw new InvalidOperationException($"the {pin.Type} namespace was pinned at {pin.Path}, not at {pins.GetValueOrDefault(pin.Type)}");
            }

            // Pod network (CNI ADD) in the pinned network namespace, with the arguments recorded above.
            NetworkAttachment? network = null;
            if (podNetwork is not null && networkIntent is not null)
            {
                step = "attach the pod network";
                var attached = await _network.AttachAsync(id, networkIntent, podNetwork, CancellationToken.None).ConfigureAwait(false);
                network = attached;
                undo.Push(("detach the pod network", () => _network.DetachAsync(id, config, networkIntent.NetNs, attached, CancellationToken.None, rollback: true)));
                TestCrash.At(_options, TestCrash.RunAfterCniAdd);
            }

            var infraPid = 0;
            if (ns.Pid == NamespaceMode.Pod)
            {
                step = "start the infra process";
                var infra = await StartInfraAsync(pinned.Uuid, pins).ConfigureAwait(false);
                infraPid = infra.Pid;
                undo.Push(("stop the infra process", () => InfraProcess.KillAsync(infra.Pid, infra.Pin.Path)));
                if (infra.Pin.Path != pins["pid"])
                    throw new InvalidOperationException($"the pid namespace was pinned at {infra.Pin.Path}, not at {pins["pid"]}");
            }

            var sandbox = new Sandbox
            {
                Id = id,
                Name = name,
                Config = config,
                CreatedAt = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100,
                RuntimeHandler = request.RuntimeHandler,
                Hostname = hostname,
                Uuid = pinned.Uuid,
                Pins = pins,
                Dir = dir,
                Status = SandboxRecord.NewStatus(dir, new SandboxStatus { State = SandboxState.Ready, InfraPid = infraPid, Network = network }),
            };

            // The record goes last, with the first status in it: its rename is the moment the
            // sandbox exists for a restarted daemon. status.json appears with the first change.
            step = "write the sandbox record";
            TestCrash.At(_options, TestCrash.RunBeforeRecord);
            AtomicFiles.Write(Path.Combine(dir, SandboxRecord.FileName), SandboxRecord.Serialize(sandbox), AtomicFiles.PrivateFile, durable: false);

            _sandboxes.Add(sandbox);
            // Before the watch: an infra process already dead must be seen stopped after it started.
            _events?.Created(id, id);
            _events?.Started(id, id);
            WatchInfra(sandbox);
            SandboxLog.Started(_log, id, name);
            return sandbox;
        }
        catch (Exception e)
        {
            var error = Translate(e, step);
            // An expected refusal (a value the kernel or a plugin refused) is one line; a fault keeps its stack.
            if (error is InvalidArgumentException or RuntimeFailureException)
                SandboxLog.RunRefused(_log, name, step, error.Message);
            else
                SandboxLog.RunFailed(_log, e, name, step);
            if (pinning is not null)
            {
                // The folder or a file failed while the pins were being made: they go with the rest.
                try
                {
                    var made = await pinning.ConfigureAwait(false);
                    undo.Push(("remove the pins", () => { RemovePins(made.Pins.Select(p => p.Path)); return Task.CompletedTask; }));
                }
                catch (Exception pinError)
                {
                    // PodNamespaces.Create undid its own pins; the first error is the one reported.
                    SandboxLog.RollbackFailed(_log, pinError, id, "pin namespaces");
                }
            }
            while (undo.TryPop(out var u))
            {
                try { await u.Action().ConfigureAwait(false); }
                catch (Exception rollback) { SandboxLog.RollbackFailed(_log, rollback, id, u.Step); }
            }
            throw error;
        }
    }

    /// <summary>
    /// Where the pod's pins will be, by type (pinns' layout, &lt;dir&gt;/&lt;type&gt;ns/&lt;uuid&gt;, in
    /// PodNamespaces' order, then the infra process's pid pin): known before they exist, so the
    /// files that name them are written while they are made. Run checks that each landed there.
    /// </summary>
    private Dictionary<string, string> PinPaths(NamespaceOption ns, string uuid)
    {
        var pins = new Dictionary<string, string>(StringComparer.Ordinal);
        void Add(string type) => pins[type] = PinnedNamespace.PathFor(_options.NamespacesDir, type, uuid);
        if (ns.UsernsOptions is { Mode: NamespaceMode.Pod })
            Add("user");
        if (ns.Network != NamespaceMode.Node)
            Add("net");
        if (ns.Ipc != NamespaceMode.Node)
            Add("ipc");
        Add("uts");
        if (ns.Pid == NamespaceMode.Pod)
            Add("pid");
        return pins;
    }

    private PodNamespacesResult PinNamespaces(PodSandboxConfig config, NamespaceOption ns, string hostname, string uuid)
    {
        var userns = ns.UsernsOptions is { Mode: NamespaceMode.Pod } u ? u : null;
        var request = new PodNamespacesRequest
        {
            NamespacesDir = _options.NamespacesDir,
            Namespaces =
            [
                new NamespaceRequest("net", Host: ns.Network == NamespaceMode.Node),
                new NamespaceRequest("ipc", Host: ns.Ipc == NamespaceMode.Node),
                // cri-o gives every pod its own uts namespace, even on the host network, so a pod
                // can never change the node's hostname.
                new NamespaceRequest("uts", Host: false),
                new NamespaceRequest("user", Host: userns is null),
            ],
            UidMappings = userns?.Uids.Select(m => new IdMapping(m.ContainerId, m.HostId, m.Length)).ToList() ?? [],
            GidMappings = userns?.Gids.Select(m => new IdMapping(m.ContainerId, m.HostId, m.Length)).ToList() ?? [],
            Sysctls = config.Linux?.Sysctls is { Count: > 0 } sysctls ? new Dictionary<string, string>(sysctls) : new Dictionary<string, string>(),
            LoopbackUp = ns.Network != NamespaceMode.Node,
            Hostname = hostname,
            Uuid = uuid,
        };
        return PodNamespaces.Create(request);
    }

    /// <summary>
    /// Where the pod's network namespace will be pinned (pinns' layout, &lt;dir&gt;/netns/&lt;uuid&gt;),
    /// known before it is: the ADD's intent records it. Run checks that the pin landed there.
    /// </summary>
    private Task<InfraHandle> StartInfraAsync(string uuid, IReadOnlyDictionary<string, string> pins) =>
        InfraProcess.StartAsync(new InfraRequest
        {
            NamespacesDir = _options.NamespacesDir,
            Uuid = uuid,
            Executable = _infra.Executable,
            Args = _infra.Args,
            NetNsPath = pins.GetValueOrDefault("net"),
            IpcNsPath = pins.GetValueOrDefault("ipc"),
            UtsNsPath = pins.GetValueOrDefault("uts"),
            UserNsPath = pins.GetValueOrDefault("user"),
        });

    /// <summary>
    /// resolv.conf, hostname and config.json of a new sandbox folder, each created in place (see
    /// <see cref="AtomicFiles.WriteNew"/>): the folder counts only once its record is written, and
    /// recovery deletes a folder without one, so a file cut short by a crash is never read.
    /// </summary>
    /// <remarks>
    /// Nothing here or in the record is durable (no fsync): measured, the fsyncs cost Run two ext4
    /// journal commits (about 7 ms of a 1 ms floor) and Stop one. Durability buys nothing here: a
    /// daemon crash loses no page cache, and a host crash loses every pinned namespace (namespaces do
    /// not survive a reboot), so the restarted daemon finds the pins gone and the sandbox NOT_READY
    /// whatever the record said. A record lost or left empty by a host crash is a folder Recover
    /// deletes, as kubelet would see a sandbox that died with the host; a half-written one cannot
    /// exist (temp + rename, and ext4's auto_da_alloc writes a replacing file's data before the
    /// rename commits).
    /// </remarks>
    private static void WritePodFiles(PodSpecContext pod)
    {
        // In a pod user namespace the files are its root's, as they are the host root's without one:
        // a container bind-mounts them read-write (a root it maps to nobody could not write them).
        var owner = PodSpec.MappedRoot(pod.NamespaceOptions);
        AtomicFiles.WriteNew(pod.ResolvConfPath, ResolvConf(pod.Config.DnsConfig), AtomicFiles.ReadableFile, owner);
        AtomicFiles.WriteNew(pod.HostnamePath, Encoding.UTF8.GetBytes(pod.Hostname + "\n"), AtomicFiles.ReadableFile, owner);
        var spec = SandboxSpec.Serialize(SandboxSpec.Build(pod));
        AtomicFiles.WriteNew(Path.Combine(pod.Dir, "config.json"), spec, AtomicFiles.PrivateFile);
    }

    /// <summary>resolv.conf(5) from the pod's DNS config, or the host's own when the pod gives none.</summary>
    internal static byte[] ResolvConf(DNSConfig? dns)
    {
        if (dns is null || (dns.Servers.Count == 0 && dns.Searches.Count == 0 && dns.Options.Count == 0))
            return File.Exists("/etc/resolv.conf") ? File.ReadAllBytes("/etc/resolv.conf") : [];
        var text = new StringBuilder();
        foreach (var server in dns.Servers)
            text.Append("nameserver ").Append(server).Append('\n');
        if (dns.Searches.Count > 0)
            text.Append("search ").AppendJoin(' ', dns.Searches).Append('\n');
        if (dns.Options.Count > 0)
            text.Append("options ").AppendJoin(' ', dns.Options).Append('\n');
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>
    /// Deletes a sandbox's folder, unmounting its /dev/shm first: a recursive delete would otherwise
    /// empty the live tmpfs of a pod and then fail on the mount point.
    /// </summary>
    internal static void DeleteSandboxDir(string dir)
    {
        PodShm.Unmount(Path.Combine(dir, "shm"));
        if (Directory.Exists(dir))
            Directory.Delete(dir, recursive: true);
    }

    private static void RemovePins(IEnumerable<string> paths)
    {
        // Reverse creation order: the user namespace, owner of the others, goes last.
        foreach (var path in paths.Reverse())
            PinnedNamespace.FromPath(path).Remove();
    }

    /// <summary>Host-side failures keep their cause in the message; a value the kernel refuses is the caller's error.</summary>
    private static Exception Translate(Exception e, string step) => e switch
    {
        CriException => e,
        SysctlRejectedException s => new InvalidArgumentException($"config.linux.sysctls[\"{SandboxValidator.Printable(s.Name)}\"]", s.Rule),
        ArgumentException a => new InvalidArgumentException("config.linux", a.Message),
        // proc_dointvec and friends parse what they can and report the rest as not written
        // ("1 2 3 4" into an int): the value is malformed, not the host.
        SyscallException { Step: "sysctl", Syscall: "write (short)" } n
            => new InvalidArgumentException("config.linux.sysctls", $"the kernel took only part of the value: {n.Message}"),
        SyscallException { Step: "sysctl" or "uid_map" or "gid_map", ErrnoName: "EINVAL" or "ENOENT" or "ERANGE" or "EPERM" } n
            => new InvalidArgumentException(n.Step == "sysctl" ? "config.linux.sysctls" : "config.linux.security_context.namespace_options.userns_options", $"the kernel refused it: {n.Message}"),
        SyscallException n => new RuntimeFailureException($"{step}: {n.Message}", n),
        IOException or UnauthorizedAccessException => new RuntimeFailureException($"{step}: {e.Message}", e),
        _ => e,
    };
}
