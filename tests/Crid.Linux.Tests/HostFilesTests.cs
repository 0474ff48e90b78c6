using Crid.Linux;

namespace Crid.Linux.Tests;

/// <summary>The plain file writes RunPodSandbox's files go through: create-only, then rename.</summary>
public sealed class HostFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-hostfiles-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void WriteNew_creates_a_file_with_its_content_mode_and_owner_and_never_touches_an_existing_one()
    {
        var path = Path.Combine(_dir, "resolv.conf");
        var content = new byte[100_000];
        Random.Shared.NextBytes(content);
        HostFiles.WriteNew(path, content, UnixFileMode.UserRead | UnixFileMode.UserWrite, owner: (1000, 1001));
        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal("1000:1001", Tool.Owner(path));

        var again = Assert.ThrowsAny<SyscallException>(() => HostFiles.WriteNew(path, "other"u8, UnixFileMode.UserRead));
        Assert.Equal("EEXIST", again.ErrnoName);
        Assert.Equal(content, File.ReadAllBytes(path));
    }

    [Fact]
    public void Rename_replaces_the_target_and_names_it_when_it_fails()
    {
        var from = Path.Combine(_dir, ".status.json.tmp");
        var to = Path.Combine(_dir, "status.json");
        File.WriteAllText(to, "old");
        HostFiles.WriteNew(from, "new"u8, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        HostFiles.Rename(from, to);
        Assert.Equal("new", File.ReadAllText(to));
        Assert.False(File.Exists(from));

        var e = Assert.ThrowsAny<SyscallException>(() => HostFiles.Rename(from, to));
        Assert.Equal("ENOENT", e.ErrnoName);
        Assert.Contains(to, e.Message);
    }

    private static class Tool
    {
        public static string Owner(string path)
        {
            using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u:%g", path]) { RedirectStandardOutput = true })!;
            var owner = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return owner;
        }
    }
}
