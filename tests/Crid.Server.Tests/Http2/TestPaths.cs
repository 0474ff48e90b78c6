namespace Crid.Tests.Http2;

/// <summary>Finds the repository's test data (testdata/), failing loudly rather than skipping.</summary>
internal static class TestPaths
{
    /// <summary>The folder holding Cri.sln, found by walking up from the test binaries.</summary>
    public static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Cri.sln")))
                {
                    return dir.FullName;
                }
            }
            throw new InvalidOperationException($"Cri.sln not found in any parent of {AppContext.BaseDirectory}: cannot locate the repository root.");
        }
    }

    /// <summary><c>&lt;repo root&gt;/testdata/cri-vectors</c>: what crictl v1.26.1 put on the wire.</summary>
    public static string Vectors => Path.Combine(RepoRoot, "testdata", "cri-vectors");

    /// <summary>The recorded crictl connections, <c>testdata/cri-vectors/h2/*.c2s</c>; at least one must exist.</summary>
    public static string[] RecordedConnections()
    {
        string dir = Path.Combine(Vectors, "h2");
        string[] files = Directory.Exists(dir) ? Directory.GetFiles(dir, "*.c2s") : [];
        if (files.Length == 0)
        {
            throw new InvalidOperationException($"no *.c2s files in {dir}.");
        }
        Array.Sort(files, StringComparer.Ordinal);
        return files;
    }

    /// <summary>The recordings' file names, one theory case each.</summary>
    public static TheoryData<string> RecordingNames()
    {
        var data = new TheoryData<string>();
        foreach (string file in RecordedConnections())
        {
            data.Add(Path.GetFileName(file));
        }
        return data;
    }

    /// <summary>The bytes of one recording, by file name.</summary>
    public static byte[] Recording(string name) => File.ReadAllBytes(Path.Combine(Vectors, "h2", name));
}
