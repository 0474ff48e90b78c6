using Crid.Core.Configuration;

namespace Crid;

internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
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
        return await Daemon.RunAsync(loaded.Options);
    }
}
