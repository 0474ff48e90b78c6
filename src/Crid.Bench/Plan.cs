namespace Crid.Bench;

/// <summary>How much of each phase to run: the full benchmark or the test suite's quick pass.</summary>
internal sealed record Plan(
    int Lifecycles,
    int Warmup,
    IReadOnlyList<int> Clients,
    int ConcurrentLifecycles,
    int LiveSandboxes,
    int ListCalls,
    int FloorIterations,
    int Restarts,
    int Pulls,
    int NetworkLifecycles,
    int NetworkClients,
    int NetworkConcurrentLifecycles,
    int LoadLifecycles,
    int IdleSeconds,
    int Containers,
    int ContainerPods,
    int ContainersPerPod,
    int ContainerClients,
    int ContainerConcurrentLifecycles,
    int ContainerLoadLifecycles)
{
    public static readonly Plan Full = new(
        Lifecycles: 200, Warmup: 10, Clients: [1, 4, 16], ConcurrentLifecycles: 200,
        LiveSandboxes: 1000, ListCalls: 50, FloorIterations: 200, Restarts: 3, Pulls: 10,
        NetworkLifecycles: 50, NetworkClients: 8, NetworkConcurrentLifecycles: 80, LoadLifecycles: 10_000, IdleSeconds: 30,
        Containers: 60, ContainerPods: 100, ContainersPerPod: 10, ContainerClients: 16, ContainerConcurrentLifecycles: 96,
        ContainerLoadLifecycles: 1000);

    public static readonly Plan Quick = new(
        Lifecycles: 20, Warmup: 3, Clients: [1, 4], ConcurrentLifecycles: 20,
        LiveSandboxes: 50, ListCalls: 10, FloorIterations: 20, Restarts: 1, Pulls: 2,
        NetworkLifecycles: 3, NetworkClients: 8, NetworkConcurrentLifecycles: 8, LoadLifecycles: 100,
        // The daemon trims in its first quiet 250 ms after growing (IdleMemory); 5 s leaves a loaded
        // machine's timers room.
        IdleSeconds: 5,
        Containers: 3, ContainerPods: 2, ContainersPerPod: 3, ContainerClients: 4, ContainerConcurrentLifecycles: 4,
        ContainerLoadLifecycles: 12);
}

internal sealed record Arguments(Plan Plan, bool Quick, string Daemon, string Json, string? LogLevel, string? DaemonLog, string? Only = null)
{
    public const string Usage = "usage: Crid.Bench [--quick] [--daemon PATH] [--json PATH] [--log-level LEVEL] [--daemon-log FILE] [--only sandboxes|pulls|containers|pod-container] [--containers N]";

    public static Arguments Parse(string[] args)
    {
        var quick = false;
        string? daemon = null, json = null, logLevel = null, daemonLog = null, only = null;
        int? containers = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--daemon" when i + 1 < args.Length:
                    daemon = args[++i];
                    break;
                case "--json" when i + 1 < args.Length:
                    json = args[++i];
                    break;
                case "--log-level" when i + 1 < args.Length:
                    // The daemon's; by default its own default (info), as it runs in production.
                    logLevel = args[++i];
                    break;
                case "--daemon-log" when i + 1 < args.Length:
                    // Every line the daemon writes (with --log-level debug, its idle trims), appended.
                    daemonLog = Path.GetFullPath(args[++i]);
                    break;
                case "--only" when i + 1 < args.Length && args[i + 1] is "sandboxes" or "pulls" or "containers" or "pod-container":
                    // One phase (and the fresh daemon's idle RSS before it), to iterate on a fix;
                    // pod-container: the containers phase's starts and teardowns alone.
                    only = args[++i];
                    break;
                case "--containers" when i + 1 < args.Length && int.TryParse(args[i + 1], out var n) && n > 0:
                    // The pod + container and teardown rows' iterations (the plan's otherwise).
                    containers = n;
                    i++;
                    break;
                default:
                    throw new ArgumentException($"unknown or incomplete argument \"{args[i]}\"\n{Usage}");
            }
        }
        var root = RepoRoot();
        daemon ??= Path.Combine(root, "out", "crid");
        json ??= Path.Combine(root, "out", "bench.json");
        if (!File.Exists(daemon))
            throw new ArgumentException($"{daemon} is missing: run `make build` first, or give --daemon PATH");
        var plan = quick ? Plan.Quick : Plan.Full;
        if (containers is { } c)
            plan = plan with { Containers = c };
        return new Arguments(plan, quick, Path.GetFullPath(daemon), Path.GetFullPath(json), logLevel, daemonLog, only);
    }

    /// <summary>The folder holding Cri.sln above the bench's binary, else the current folder.</summary>
    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cri.sln")))
                return dir.FullName;
        }
        return Directory.GetCurrentDirectory();
    }
}
