using Crid.Core.Configuration;
using Crid.Images;
using Crid.Images.Import;
using Crid.Images.Store;

namespace Crid;

/// <summary>
/// `crid import FILE [--config FILE] [--state-dir DIR]`: loads an OCI or Docker image archive into
/// the store of the daemon that uses that state dir, running or not (the store's own lock, not the
/// daemon's, keeps the two apart).
/// </summary>
internal static class ImportCommand
{
    public static int Run(string[] args)
    {
        var files = args.Where((a, i) => !a.StartsWith("--", StringComparison.Ordinal) && (i == 0 || !args[i - 1].StartsWith("--", StringComparison.Ordinal) || args[i - 1].Contains('='))).ToList();
        if (files.Count != 1 || args.Contains("--help"))
        {
            Console.Error.WriteLine("usage: crid import FILE [--config FILE] [--state-dir DIR]  (an OCI layout or Docker archive, as `docker save` or `skopeo copy ... oci-archive:FILE` write)");
            return 2;
        }
        CridOptions options;
        try
        {
            options = ConfigLoader.Load(args.Where(a => a != files[0]).ToArray()).Options;
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"crid: {e.Message}");
            return 2;
        }
        try
        {
            Directory.CreateDirectory(options.StateDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            using var store = new ImageStore(ImageServices.StoreRoot(options));
            new ArchiveImporter(store, Console.Out).Import(Path.GetFullPath(files[0]));
            return 0;
        }
        catch (Exception e) when (e is ArchiveImporter.ImportException or IOException or UnauthorizedAccessException
            or Crid.Images.Registry.ManifestException or Crid.Images.Unpack.LayerException or System.Text.Json.JsonException or Crid.Core.Errors.CriException)
        {
            Console.Error.WriteLine($"crid import: {e.Message}");
            return 1;
        }
    }
}
