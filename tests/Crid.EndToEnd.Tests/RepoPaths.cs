namespace Crid.EndToEnd.Tests;

/// <summary>Where the repository, the built daemon and the test data are: everything inside the clone.</summary>
internal static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    /// <summary>The daemon as `make build` leaves it: the tests run the real product.</summary>
    public static string Daemon
    {
        get
        {
            var path = Path.Combine(Root, "out", "crid");
            if (!File.Exists(path))
                throw new InvalidOperationException($"{path} is missing: run `make build` (make test does) before these tests");
            return path;
        }
    }

    /// <summary>testdata/cri-vectors: requests and connections recorded from crictl v1.26.1 (see its README).</summary>
    public static string Vectors => Path.Combine(TestData, "cri-vectors");

    public static string TestData => Path.Combine(Root, "testdata");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cri.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (the folder holding Cri.sln)");
    }
}
