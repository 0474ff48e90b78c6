using System.Formats.Tar;
using System.Text;
using Crid.Images.Import;
using Crid.Images.Tests.Support;

namespace Crid.Images.Tests;

public sealed class ImportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-import-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Oci_and_docker_archives_load_with_their_names()
    {
        var image = TestImage.Build([TestImage.Layer(new TarBuilder().File("hello", "oci").Build(), Compression.Zstd)], multiArch: true);
        var dockerTar = new TarBuilder().File("hello", "docker").Build();
        var docker = TestImage.Build([TestImage.Layer(dockerTar, Compression.None)]);
        using var h = new PullHarness();
        var output = new StringWriter();
        var imported = new ArchiveImporter(h.Store, output).Import(TestArchives.OciArchive(_dir, image, "example.com/app:1.0"));
        Assert.Equal(image.ConfigDigest, Assert.Single(imported).Id);
        Assert.Equal(["example.com/app:1.0"], h.Store.Lookup("example.com/app:1.0")!.RepoTags);
        Assert.Equal(["example.com/app@" + image.TopDigest], h.Store.Lookup(image.ConfigDigest)!.RepoDigests);
        Assert.Equal("oci", File.ReadAllText(Path.Combine(h.LayerFolder(imported[0], 0), "hello")));

        var loaded = new ArchiveImporter(h.Store, output).Import(TestArchives.DockerArchive(_dir, docker, "busybox:old", dockerTar));
        Assert.Equal(docker.ConfigDigest, h.Store.Lookup("docker.io/library/busybox:old")?.Id);
        Assert.Equal("docker", File.ReadAllText(Path.Combine(h.LayerFolder(loaded[0], 0), "hello")));
        Assert.Contains("imported " + docker.ConfigDigest, output.ToString());
    }

    [Fact]
    public void A_tampered_archive_is_refused_and_leaves_nothing()
    {
        var tar = new TarBuilder().File("hello", "x").Build();
        var image = TestImage.Build([TestImage.Layer(tar, Compression.None)], diffIdsOverride: ["sha256:" + new string('0', 64)]);
        using var h = new PullHarness();
        var e = Assert.Throws<ArchiveImporter.ImportException>(() => new ArchiveImporter(h.Store, TextWriter.Null).Import(TestArchives.DockerArchive(_dir, image, "bad:1", tar)));
        Assert.Contains("diff id", e.Message);
        h.Store.Collect();
        h.AssertEmpty();
        var notTar = Path.Combine(_dir, "junk.tar");
        File.WriteAllText(notTar, "junk");
        Assert.Throws<ArchiveImporter.ImportException>(() => new ArchiveImporter(h.Store, TextWriter.Null).Import(notTar));
    }
}
