using System.Diagnostics;

namespace Crid.EndToEnd.Tests;

/// <summary>`make install` into a DESTDIR: what it puts where, and that it does not rebuild a fresh build.</summary>
public sealed class InstallTests
{
    [Fact]
    public async Task Make_install_follows_PREFIX_installs_the_docs_the_unit_names_and_does_not_rebuild()
    {
        var dest = Directory.CreateTempSubdirectory("crid-install-").FullName;
        try
        {
            var before = File.GetLastWriteTimeUtc(RepoPaths.Daemon);
            // A dry run first: a real rebuild would take out/crid away under every other test running now.
            var (_, plan) = await MakeAsync("-n", "install", $"DESTDIR={dest}", "PREFIX=/opt/crid-test");
            Assert.False(plan.Contains("dotnet publish", StringComparison.Ordinal) || plan.Contains("make build", StringComparison.Ordinal),
                $"make install would rebuild out/crid: a source is newer than it (run make build first)\n{plan}");
            var (code, output) = await MakeAsync("install", $"DESTDIR={dest}", "PREFIX=/opt/crid-test");
            Assert.True(code == 0, output);
            Assert.DoesNotContain("dotnet publish", output);
            Assert.Equal(before, File.GetLastWriteTimeUtc(RepoPaths.Daemon));

            var unit = await File.ReadAllTextAsync(Path.Combine(dest, "etc/systemd/system/crid.service"));
            Assert.Contains("ExecStart=/opt/crid-test/bin/crid\n", unit);
            Assert.Contains("Documentation=file:///opt/crid-test/share/doc/crid/README.md", unit);
            Assert.DoesNotContain("@PREFIX@", unit);
            Assert.True(File.Exists(Path.Combine(dest, "opt/crid-test/share/doc/crid/README.md")));
            Assert.True(File.Exists(Path.Combine(dest, "etc/crid/crid.yaml")));

            // The installed daemon runs.
            var psi = new ProcessStartInfo(Path.Combine(dest, "opt/crid-test/bin/crid"), "--version") { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            var version = await p.StandardOutput.ReadToEndAsync();
            await p.WaitForExitAsync();
            Assert.Equal(0, p.ExitCode);
            Assert.StartsWith("crid ", version);
        }
        finally
        {
            Directory.Delete(dest, recursive: true);
        }
    }

    private static async Task<(int Code, string Output)> MakeAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("make", ["-C", RepoPaths.Root, .. args]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, stdout + await stderr);
    }
}
