using Crid.Core.Configuration;

namespace Crid;

internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        // The pod's infra process: the daemon's own binary, exec'd as PID 1 of the pod's pid namespace.
        if (args is ["pause"])
            return Crid.Linux.InfraProcess.RunPause();
        if (args is ["import", ..])
            return ImportCommand.Run(args[1..]);
        if (args.Contains("--version"))
        {
            await Console.Out.WriteLineAsync($"crid {Daemon.RuntimeInfoText()}");
            return 0;
        }
        LoadResult loaded;
        try
        {
            loaded = ConfigLoader.Load(args);
        }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync($"crid: {e.Message}");
            return 2;
        }
        if (loaded.HelpText is not null)
        {
            await Console.Out.WriteAsync(loaded.HelpText);
            return 0;
        }
        // TEST ONLY crash injection (see TestCrash): an environment variable, so no config file or
        // command line a user writes can turn it on by accident.
        var crashAt = Environment.GetEnvironmentVariable(TestCrash.EnvironmentVariable);
        return await Daemon.RunAsync(string.IsNullOrEmpty(crashAt) ? loaded.Options : loaded.Options with { TestOnlyCrashAt = crashAt });
    }
}
