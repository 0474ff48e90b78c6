using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// How <see cref="PodNamespaces.Create(PodNamespacesRequest, PodNamespacesOptions)"/> works inside. The
/// defaults are production's; tests and the benchmark pass others.
/// </summary>
internal sealed record PodNamespacesOptions
{
    public static readonly PodNamespacesOptions Default = new();

    /// <summary>The step at which Create fails with EIO, to see each rollback.</summary>
    public string? FailAtStep { get; init; }

    /// <summary>Hand mappings to the kernel unchecked, to see its own refusals.</summary>
    public bool SkipMappingValidation { get; init; }

    /// <summary>CLONE_VM for the helper child; false copies the address space (fork-like), to measure.</summary>
    public bool ShareMemory { get; init; } = true;

    /// <summary>Long-lived namespace worker threads; false starts a thread per call, to measure.</summary>
    public bool UseWorkers { get; init; } = true;
}

/// <summary>
/// Creates and pins a pod's ipc, uts, net and user namespaces, the in-process equivalent of
/// cri-o's pinns helper and NewPodNamespaces. All or nothing: a failure undoes every pin.
/// </summary>
public static unsafe class PodNamespaces
{
    // Pin order; a failure removes the pins made so far in reverse.
    private static readonly string[] Order = ["user", "net", "ipc", "uts"];

    public static PodNamespacesResult Create(PodNamespacesRequest? request) => Create(request, PodNamespacesOptions.Default);

    internal static PodNamespacesResult Create(PodNamespacesRequest? request, PodNamespacesOptions options)
    {
        ArgumentNullException.ThrowIfNull(request);
        var plan = Plan.From(request, options.SkipMappingValidation);
        string uuid = request.Uuid ?? Guid.NewGuid().ToString("D");
        if (plan.CloneFlags == 0)
        {
            return new PodNamespacesResult(uuid, []);
        }

        var pins = new List<PinnedNamespace>(4);
        HelperChild? child = null;
        try
        {
            foreach (string type in Order)
            {
                if (plan.IsNew(type))
                {
                    string dir = Path.Combine(request.NamespacesDir, type + "ns");
                    Inject(options, "create folder", type, dir);
                    NsFiles.EnsureDirTree(dir, type);
                }
            }

            Inject(options, "clone", plan.SingleType, null);
            child = HelperChild.Start(plan.CloneFlags, plan.SingleType, options.ShareMemory);
            int pid = child.Pid;

            // Before the id maps on purpose: ipc and mqueue sysctls are writable only by the uid
            // that root of the owning user namespace maps to (ipc/ipc_sysctl.c ipc_permissions),
            // which would be 100000, not us; while the map is still empty the kernel falls back
            // to GLOBAL_ROOT_UID, i.e. us. net sysctls, sethostname and SIOCSIFFLAGS only need
            // capabilities in the owning namespace, which an ancestor's root has anyway.
            if (plan.NeedsWork)
            {
                string proc = $"/proc/{pid}/ns/";
                string?[] targets =
                [
                    plan.EnterNet ? proc + "net" : null,
                    plan.EnterIpc ? proc + "ipc" : null,
                    plan.EnterUts ? proc + "uts" : null,
                ];
                Inject(options, "configure", null, null);
                NamespaceThreads.Run(targets, () => ConfigureInside(plan), options.UseWorkers);
            }

            if (plan.IsNew("user"))
            {
                // user_namespaces(7): each map is written once, in a single write(2), by a
                // process holding CAP_SETUID/CAP_SETGID in the parent namespace, which we are.
                // setgroups is left at "allow" on purpose: containers call setgroups(2).
                Inject(options, "uid_map", "user", null);
                NsFiles.WriteOnce($"/proc/{pid}/uid_map", plan.UidMap, "uid_map", "user");
                Inject(options, "gid_map", "user", null);
                NsFiles.WriteOnce($"/proc/{pid}/gid_map", plan.GidMap, "gid_map", "user");
            }

            foreach (string type in Order)
            {
                if (!plan.IsNew(type))
                {
                    continue;
                }

                string pin = PinnedNamespace.PathFor(request.NamespacesDir, type, uuid);
                Inject(options, "create pin", type, pin);
                NsFiles.CreatePinFile(pin, type, plan.Chown, plan.RootUid, plan.RootGid);
                pins.Add(new PinnedNamespace(type, pin));
                Inject(options, "bind mount", type, pin);
                NsFiles.BindMount($"/proc/{pid}/ns/{type}", pin, type);
            }

            return new PodNamespacesResult(uuid, pins.ToArray());
        }
        catch
        {
            for (int i = pins.Count - 1; i >= 0; i--)
            {
                try
                {
                    pins[i].Remove();
                }
                catch (SyscallException)
                {
                    // Best effort: the original error is the one to report.
                }
            }

            throw;
        }
        finally
        {
            child?.Dispose();
        }
    }

    private static void Inject(PodNamespacesOptions options, string step, string? type, string? path)
    {
        if (options.FailAtStep == step)
        {
            throw Interop.Error(EIO, "injected", path, step, type);
        }
    }

    /// <summary>Runs on a namespace thread that has joined the pod's new net/ipc/uts namespaces.</summary>
    private static void ConfigureInside(Plan plan)
    {
        foreach (var (_, path, value, kind) in plan.SysctlWrites)
        {
            NsFiles.WriteOnce(path, value, "sysctl", kind == Sysctls.Kind.Net ? "net" : "ipc");
        }

        if (plan.LoopbackUp)
        {
            LoopbackUp();
        }

        if (plan.Hostname is { } hostname)
        {
            fixed (byte* p = hostname)
            {
                Interop.CheckIo(sethostname(p, hostname.Length), "sethostname", System.Text.Encoding.UTF8.GetString(hostname), "sethostname", "uts");
            }
        }
    }

    private static void LoopbackUp()
    {
        // netdevice(7); Tmds.LibC has the ioctl numbers but not struct ifreq or its flags.
        const short IFF_UP = 0x1;
        using SafeFd sock = SafeFd.Check(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket", "lo", "loopback", "net");

        // struct ifreq: char ifr_name[IFNAMSIZ=16]; then a union whose short ifr_flags is at 16.
        byte* ifr = stackalloc byte[40];
        new Span<byte>(ifr, 40).Clear();
        ifr[0] = (byte)'l';
        ifr[1] = (byte)'o';
        Interop.CheckIo(Interop.Ioctl(sock, SIOCGIFFLAGS, ifr), "ioctl SIOCGIFFLAGS", "lo", "loopback", "net");
        *(short*)(ifr + 16) |= IFF_UP;
        Interop.CheckIo(Interop.Ioctl(sock, SIOCSIFFLAGS, ifr), "ioctl SIOCSIFFLAGS", "lo", "loopback", "net");
    }

    /// <summary>The request checked and turned into flags, before anything touches the kernel.</summary>
    private sealed class Plan
    {
        private readonly HashSet<string> _new = [];

        public int CloneFlags { get; private set; }

        public string? SingleType { get; private set; }

        public bool Chown { get; private set; }

        public uint RootUid { get; private set; }

        public uint RootGid { get; private set; }

        public bool EnterNet { get; private set; }

        public bool EnterIpc { get; private set; }

        public bool EnterUts { get; private set; }

        public bool NeedsWork => EnterNet || EnterIpc || EnterUts;

        public bool LoopbackUp { get; private set; }

        /// <summary>UTF-8, checked against HOST_NAME_MAX.</summary>
        public byte[]? Hostname { get; private set; }

        public string UidMap { get; private set; } = "";

        public string GidMap { get; private set; } = "";

        public List<(string Name, string Path, string Value, Sysctls.Kind Kind)> SysctlWrites { get; } = [];

        public bool IsNew(string type) => _new.Contains(type);

        public static Plan From(PodNamespacesRequest r, bool skipMappingValidation)
        {
            if (string.IsNullOrEmpty(r.NamespacesDir))
            {
                throw new ArgumentException("NamespacesDir is required", nameof(r.NamespacesDir));
            }

            if (r.Uuid is not null && !Guid.TryParseExact(r.Uuid, "D", out _))
            {
                throw new ArgumentException("Uuid must be a uuid in its 36-character form", nameof(r.Uuid));
            }

            var plan = new Plan();
            var seen = new HashSet<string>();
            var namespaces = r.Namespaces ?? [];
            for (int i = 0; i < namespaces.Count; i++)
            {
                var ns = namespaces[i] ?? throw new ArgumentException($"namespaces[{i}] is null", nameof(r.Namespaces));
                int flag = ns.Type switch
                {
                    "net" => CLONE_NEWNET,
                    "ipc" => CLONE_NEWIPC,
                    "uts" => CLONE_NEWUTS,
                    "user" => CLONE_NEWUSER,
                    _ => throw new ArgumentException($"namespaces[{i}]: invalid namespace type \"{ns.Type}\" (expected ipc, uts, net or user)", nameof(r.Namespaces)),
                };
                if (!seen.Add(ns.Type))
                {
                    throw new ArgumentException($"namespaces[{i}]: namespace type \"{ns.Type}\" requested twice", nameof(r.Namespaces));
                }

                if (!ns.Host)
                {
                    plan._new.Add(ns.Type);
                    plan.CloneFlags |= flag;
                    plan.SingleType = plan._new.Count == 1 ? ns.Type : null;
                }
            }

            var uids = r.UidMappings ?? [];
            var gids = r.GidMappings ?? [];
            if (plan.IsNew("user") && !skipMappingValidation)
            {
                IdMappings.Validate(uids, "uids");
                IdMappings.Validate(gids, "gids");
            }

            if (plan.IsNew("user"))
            {
                plan.UidMap = IdMappings.Format(uids);
                plan.GidMap = IdMappings.Format(gids);
                plan.Chown = true;
                plan.RootUid = IdMappings.HostIdOfRoot(uids);
                plan.RootGid = IdMappings.HostIdOfRoot(gids);
            }
            else if (uids.Count > 0 || gids.Count > 0)
            {
                throw new ArgumentException("uid/gid mappings are only allowed with a new user namespace", uids.Count > 0 ? "uids" : "gids");
            }

            bool hostNet = !plan.IsNew("net"), hostIpc = !plan.IsNew("ipc");
            foreach (var (name, value) in r.Sysctls ?? new Dictionary<string, string>())
            {
                Sysctls.Validate(name, value, hostNet, hostIpc);
                var kind = Sysctls.Classify(name, out string path);
                plan.SysctlWrites.Add((name, path, value, kind));
                plan.EnterNet |= kind == Sysctls.Kind.Net;
                plan.EnterIpc |= kind == Sysctls.Kind.Ipc;
            }

            // Loopback of the host's network is the host's business: only a new netns is touched.
            if (r.LoopbackUp && plan.IsNew("net"))
            {
                plan.EnterNet = true;
                plan.LoopbackUp = true;
            }

            if (!string.IsNullOrEmpty(r.Hostname))
            {
                if (!plan.IsNew("uts"))
                {
                    throw new ArgumentException("a hostname needs a new uts namespace", nameof(r.Hostname));
                }

                byte[] name = System.Text.Encoding.UTF8.GetBytes(r.Hostname);

                // sethostname(2): at most HOST_NAME_MAX (64) bytes; a NUL would silently cut it.
                if (name.Length > 64 || name.Contains((byte)0))
                {
                    throw new ArgumentException($"hostname \"{r.Hostname}\": at most 64 bytes and no NUL", nameof(r.Hostname));
                }

                plan.Hostname = name;
                plan.EnterUts = true;
            }

            return plan;
        }
    }
}
