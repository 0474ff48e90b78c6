namespace Crid.Core.Tests;

/// <summary>The repository's testdata folder, found from the test binary up to the folder holding Cri.sln.</summary>
internal static class TestData
{
    public static string Dir { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cri.sln")))
                return Path.Combine(dir.FullName, "testdata");
        }
        throw new InvalidOperationException("cannot find the repository root (the folder holding Cri.sln)");
    }
}
