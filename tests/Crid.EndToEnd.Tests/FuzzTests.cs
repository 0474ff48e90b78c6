using System.Collections.Concurrent;
using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Runtime.V1;
using Xunit.Abstractions;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// Property-based: random RunPodSandbox requests, valid and invalid in every field, against the real
/// daemon and pinning core. Properties: the answer is always OK, InvalidArgument or AlreadyExists
/// (the documented set: a request is either run, refused for what it says, or refused for a name in
/// use; nothing in it may make the daemon fail otherwise); a request carrying a value known to be
/// invalid is never OK; the daemon never logs an unexpected failure; and once every created sandbox
/// is removed, nothing is left. Rerun a failure with CRID_FUZZ_SEED=&lt;printed seed&gt;.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    private const int Requests = 10_000;
    private const int Clients = 8;

    private static readonly StatusCode[] Documented = [StatusCode.OK, StatusCode.InvalidArgument, StatusCode.AlreadyExists];

    [Fact]
    public async Task Ten_thousand_random_RunPodSandbox_requests()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("CRID_FUZZ_SEED"), out var s) ? s : Environment.TickCount;
        output.WriteLine($"seed {seed} (CRID_FUZZ_SEED={seed} reruns it)");
        await using var d = await DaemonProcess.StartAsync();
        var outcomes = new ConcurrentDictionary<StatusCode, int>();
        var failures = new ConcurrentQueue<string>();
        var watch = Stopwatch.StartNew();

        await Task.WhenAll(Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
        {
            var generator = new Generator(new Random(seed + c));
            for (var i = c; i < Requests; i += Clients)
            {
                var (request, mustFail) = generator.Next();
                StatusCode code;
                string detail = "";
                try
                {
                    var id = (await d.Runtime.RunPodSandboxAsync(request, deadline: DateTime.UtcNow.AddSeconds(30))).PodSandboxId;
                    code = StatusCode.OK;
                    await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id });
                    await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
                }
                catch (RpcException e)
                {
                    code = e.StatusCode;
                    detail = e.Status.Detail;
                }
                outcomes.AddOrUpdate(code, 1, (_, n) => n + 1);
                if (!Documented.Contains(code) || (mustFail is not null && code == StatusCode.OK))
                {
                    failures.Enqueue($"seed {seed} client {c} request {i}: {code} {detail}" +
                        (mustFail is not null ? $" (invalid: {mustFail})" : "") + $"\n  {Describe(request)}");
                }
            }
        })));

        output.WriteLine($"{Requests} requests in {watch.Elapsed.TotalSeconds:F1} s: " +
            string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}")));
        Assert.True(failures.IsEmpty, $"{failures.Count} requests broke a property:\n" + string.Join("\n", failures.Take(10)));
        Assert.True(outcomes.GetValueOrDefault(StatusCode.OK) > 100, "too few valid requests: the generator is broken");
        Assert.True(outcomes.GetValueOrDefault(StatusCode.InvalidArgument) > Requests / 2, "too few invalid requests: the generator is broken");

        Assert.Empty((await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
        Assert.Empty(Cleanup.NsfsMountsUnder(d.Dir));
        Assert.Empty(Leaks.PinFiles(d.NamespacesDir));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(d.StateDir, "sandboxes")));
        Assert.Empty(await Leaks.ReservedNamesAsync(d));
        Assert.Empty(Leaks.ChildrenOf(d.Process.Id));
        Assert.DoesNotContain("failed unexpectedly", d.Stderr);
    }

    private static string Describe(RunPodSandboxRequest r)
    {
        var text = JsonFormatter.Default.Format(r);
        return text.Length > 600 ? text[..600] + "…" : text;
    }

    /// <summary>
    /// Mostly invalid-and-cheap requests: each starts valid and, nine times in ten, gets one to three
    /// mutations; a mutation either keeps the request valid or is known to make it invalid (then it
    /// is named, and the request must fail). Seven in ten are then mutated until invalid.
    /// </summary>
    private sealed class Generator(Random rng)
    {
        private string? _mustFail;
        private int _case;

        // A field made invalid is not mutated again: a later valid value would make the request valid.
        private readonly HashSet<int> _poisoned = [];

        private static readonly string Huge = new('n', 10_000);

        private static readonly string[] ValidStrings = ["a", "fz", "пóд-☃", "../x", "a b", "a\nb", "x/y", Huge, "\u0001"];
        private static readonly string[] Hostnames = ["h", "host-1", new string('h', 64), "..", "-x", "пóд", "UPPER"];
        private static readonly string[] BadHostnames = [new string('h', 65), "a/b", "a\0b", string.Concat(Enumerable.Repeat("☃", 22))];

        private static readonly (string Name, bool Valid)[] SysctlNames =
        [
            ("net.core.somaxconn", true), ("net.ipv4.ip_forward", true), ("net.ipv4.ping_group_range", true),
            ("net/ipv4/tcp_syncookies", true), ("kernel.shmmax", true), ("kernel.msgmax", true), ("kernel.sem", true),
            ("fs.mqueue.msg_max", true),
            ("vm.swappiness", false), ("kernel.hostname", false), ("kernel.domainname", false), ("net/../../etc", false),
            ("net..core", false), ("net.core.", false), ("/net/core/x", false), ("net//core", false), ("", false),
            ("net.core\0x", false), ("fs.file-max", false), ("kernel.pid_max", false),
        ];

        private static readonly string[] SysctlValues = ["1", "0", "1024", "abc", "", "-1", "99999999999999999999", "0 0", "1 2 3 4", " 7 ", "☃"];
        private static readonly string[] BadSysctlValues = ["1\n2", "1\02"];

        public (RunPodSandboxRequest Request, string? MustFail) Next()
        {
            _mustFail = null;
            _poisoned.Clear();
            var config = new PodSandboxConfig
            {
                Metadata = new PodSandboxMetadata { Name = "fz-" + rng.Next(10), Namespace = "fuzz", Uid = "u", Attempt = (uint)rng.Next(3) },
                Linux = new LinuxPodSandboxConfig
                {
                    SecurityContext = new LinuxSandboxSecurityContext
                    {
                        NamespaceOptions = new NamespaceOption { Pid = Pick(NamespaceMode.Pod, NamespaceMode.Container, NamespaceMode.Node) },
                    },
                },
            };
            var request = new RunPodSandboxRequest { Config = config };
            if (rng.Next(10) != 0)
            {
                for (var m = rng.Next(1, 4); m > 0; m--)
                    Mutate(request, config);
            }
            // Seven in ten must be invalid (cheap: refused before any namespace exists, or by the
            // kernel's first write); mutate on until one is.
            if (rng.Next(10) < 7)
            {
                for (var tries = 0; _mustFail is null && tries < 50; tries++)
                    Mutate(request, config);
            }
            return (request, _mustFail);
        }

        private T Pick<T>(params T[] items) => items[rng.Next(items.Length)];

        /// <summary>Marks the request as one that must fail, naming why; returns the value it is given.</summary>
        private string Invalid(string what)
        {
            _mustFail ??= what.Length > 40 ? what[..40] + "…" : what;
            _poisoned.Add(_case);
            return what;
        }

        private NamespaceMode Mode(string field, params NamespaceMode[] allowed)
        {
            var mode = (NamespaceMode)Pick(0, 1, 2, 3, 4, 99, -1);
            if (!allowed.Contains(mode))
                Invalid($"{field} {mode}");
            return mode;
        }

        private void Mutate(RunPodSandboxRequest request, PodSandboxConfig config)
        {
            var ns = config.Linux.SecurityContext.NamespaceOptions;
            // Both sysctl cases write the same map.
            _case = rng.Next(16) is var n && n == 11 ? 10 : n;
            if (_poisoned.Contains(_case))
                return;
            switch (_case)
            {
                case 0:
                    if (rng.Next(20) == 0)
                    {
                        request.Config = null;
                        Invalid("no config");
                    }
                    else if (rng.Next(10) == 0)
                    {
                        config.Metadata = null;
                        Invalid("no metadata");
                    }
                    break;
                case 1:
                    if (config.Metadata is null)
                        break;
                    var which = rng.Next(3);
                    var value = rng.Next(4) == 0 ? "" : Pick(ValidStrings);
                    if (value.Length == 0)
                        Invalid($"empty metadata field {which}");
                    if (which == 0) config.Metadata.Name = value;
                    else if (which == 1) config.Metadata.Namespace = value;
                    else config.Metadata.Uid = value;
                    break;
                case 2:
                    if (rng.Next(3) == 0)
                        config.Hostname = Invalid(Pick(BadHostnames));
                    else
                        config.Hostname = Pick(Hostnames);
                    break;
                case 3:
                    var key = Pick("app", "../k", "k\0", "☃", "");
                    var label = Pick("v", "", Huge[..4000], "../v");
                    if (key.Length == 0)
                        Invalid("empty label key");
                    if (System.Text.Encoding.UTF8.GetByteCount(key) + System.Text.Encoding.UTF8.GetByteCount(label) > 4096)
                        Invalid("label too long");
                    if (rng.Next(2) == 0) config.Labels[key] = label;
                    else config.Annotations[key] = label;
                    break;
                case 4:
                    config.DnsConfig = new DNSConfig
                    {
                        Servers = { Pick("10.96.0.10", "not-an-ip", "::1", "") },
                        Searches = { Pick("svc.cluster.local", Huge[..300], "") },
                        Options = { Pick("ndots:5", "", "a b") },
                    };
                    break;
                case 5:
                    var protocol = (Protocol)Pick(0, 1, 2, 99, -3);
                    if (!Enum.IsDefined(protocol))
                        Invalid($"protocol {(int)protocol}");
                    config.PortMappings.Add(new PortMapping { Protocol = protocol, ContainerPort = Pick(80, 0, -1, 70000), HostPort = Pick(0, 8080, -5), HostIp = Pick("", "0.0.0.0", "nope") });
                    break;
                case 6:
                    ns.Network = Mode("network", NamespaceMode.Pod, NamespaceMode.Node);
                    break;
                case 7:
                    ns.Ipc = Mode("ipc", NamespaceMode.Pod, NamespaceMode.Node);
                    break;
                case 8:
                    ns.Pid = Mode("pid", NamespaceMode.Pod, NamespaceMode.Container, NamespaceMode.Node);
                    break;
                case 9:
                    ns.UsernsOptions = Userns();
                    break;
                case 10:
                    var (name, valid) = Pick(SysctlNames);
                    var sysctlValue = rng.Next(8) == 0 ? Pick(BadSysctlValues) : Pick(SysctlValues);
                    if (!valid)
                        Invalid($"sysctl {name}");
                    if (BadSysctlValues.Contains(sysctlValue))
                        Invalid("sysctl value with NUL or newline");
                    config.Linux.Sysctls[name] = sysctlValue;
                    break;
                case 12:
                    request.RuntimeHandler = Pick("", "kata", "\0", Huge[..100]);
                    if (request.RuntimeHandler.Length > 0)
                        Invalid("runtime handler");
                    break;
                case 13:
                    config.LogDirectory = Pick("/var/log/pods/x", "../../etc", "", Huge);
                    config.Linux.CgroupParent = Pick("/kubepods", "../..", "", "a\0b");
                    break;
                case 14:
                    config.Linux.SecurityContext.Privileged = rng.Next(2) == 0;
                    config.Linux.SecurityContext.ReadonlyRootfs = rng.Next(2) == 0;
                    config.Linux.SecurityContext.RunAsUser = new Int64Value { Value = Pick(0L, 1000L, -1L) };
                    break;
                default:
                    if (config.Metadata is not null)
                        config.Metadata.Attempt = (uint)rng.Next();
                    break;
            }
        }

        private UserNamespace Userns()
        {
            var mode = (NamespaceMode)Pick(0, 0, 0, 2, 1, 3, 99);
            var u = new UserNamespace { Mode = mode };
            if (!Enum.IsDefined(mode) || mode is NamespaceMode.Container or NamespaceMode.Target)
                Invalid($"userns mode {mode}");
            var shape = rng.Next(8);
            IDMapping root = new() { ContainerId = 0, HostId = (uint)Pick(100000, 200000), Length = 65536 };
            switch (shape)
            {
                case 0: // none
                    if (mode == NamespaceMode.Pod) Invalid("userns POD without mappings");
                    return u;
                case 1:
                    u.Uids.Add(root);
                    Invalid(mode == NamespaceMode.Pod ? "only uids" : "mappings outside POD");
                    return u;
                case 2:
                    u.Gids.Add(root);
                    Invalid(mode == NamespaceMode.Pod ? "only gids" : "mappings outside POD");
                    return u;
                case 3:
                    u.Uids.Add(new IDMapping { ContainerId = 0, HostId = 100000, Length = 0 });
                    u.Gids.Add(root);
                    Invalid("length 0");
                    return u;
                case 4:
                    u.Uids.Add(root);
                    u.Gids.Add(new IDMapping { ContainerId = 0, HostId = uint.MaxValue - 5, Length = 100 });
                    Invalid("overflow");
                    return u;
                case 5:
                    u.Uids.Add(new IDMapping { ContainerId = 1, HostId = 100000, Length = 10 });
                    u.Gids.Add(root);
                    Invalid("root not mapped");
                    return u;
                default:
                    u.Uids.Add(root);
                    u.Gids.Add(root);
                    if (mode != NamespaceMode.Pod) Invalid("mappings outside POD");
                    return u;
            }
        }
    }
}
