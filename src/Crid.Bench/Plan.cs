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
    int Containers)
{
    public static readonly Plan Full = new(
        Lifecycles: 200, Warmup: 10, Clients: [1, 4, 16], ConcurrentLifecycles: 200,
        LiveSandboxes: 1000, ListCalls: 50, FloorIterations: 200, Restarts: 3, Pulls: 10, Containers: 30);

    public static readonly Plan Quick = new(
        Lifecycles: 20, Warmup: 3, Clients: [1, 4], ConcurrentLifecycles: 20,
        LiveSandboxes: 50, ListCalls: 10, FloorIterations: 20, Restarts: 1, Pulls: 2, Containers: 3);
}

internal sealed record Arguments(Plan Plan, bool Quick, string Daemon, string Json, string? LogLevel)
{
    public const string Usage = "usage: Crid.Bench [--quick] [--daemon PATH] [--json PATH] [--log-level LEVEL]";

    public static Arguments Parse(string[] args)
    {
        var quick = false;
        string? daemon = null, json = null, logLevel = null;
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
                default:
                    throw new ArgumentException($"unknown or incomplete argument \"{args[i]}\"\n{Usage}");
            }
        }
        var root = RepoRoot();
        daemon ??= Path.Combine(root, "out", "crid");
        json ??= Path.Combine(root, "out", "bench.json");
        if (!File.Exists(daemon))
            throw new ArgumentException($"{daemon} is missing: run `make build` first, or give --daemon PATH");
        return new Arguments(quick ? Plan.Quick : Plan.Full, quick, Path.GetFullPath(daemon), Path.GetFullPath(json), logLevel);
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
