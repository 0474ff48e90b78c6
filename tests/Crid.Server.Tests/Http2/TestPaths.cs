namespace Crid.Tests.Http2;

/// <summary>Finds the repository's shared test data, failing loudly rather than skipping.</summary>
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

    /// <summary><c>&lt;repo root&gt;/../shared</c>: data shared by the project, beside the repository.</summary>
    public static string Shared
    {
        get
        {
            string shared = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
            if (!Directory.Exists(shared))
            {
                throw new InvalidOperationException($"shared data folder not found at {shared} (expected beside the repository root {RepoRoot}).");
            }
            return shared;
        }
    }

    /// <summary>The recorded crictl connections, <c>shared/cri-vectors/h2/*.c2s</c>; at least one must exist.</summary>
    public static string[] RecordedConnections()
    {
        string dir = Path.Combine(Shared, "cri-vectors", "h2");
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
    public static byte[] Recording(string name) => File.ReadAllBytes(Path.Combine(Shared, "cri-vectors", "h2", name));
}
