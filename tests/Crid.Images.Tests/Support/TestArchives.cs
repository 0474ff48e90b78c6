using System.Formats.Tar;
using System.Text;

namespace Crid.Images.Tests.Support;

/// <summary>Image archives as `skopeo copy oci-archive:` and `docker save` write them.</summary>
public static class TestArchives
{
    public static string OciArchive(string dir, TestImage image, string name)
    {
        var layout = Path.Combine(dir, "layout-" + Guid.NewGuid().ToString("N")[..6]);
        image.WriteLayout(layout, name);
        var archive = layout + ".tar";
        TarFile.CreateFromDirectory(layout, archive, includeBaseDirectory: false);
        return archive;
    }

    public static string DockerArchive(string dir, TestImage image, string tag, byte[] layerTar)
    {
        var archive = Path.Combine(dir, "docker-" + Guid.NewGuid().ToString("N")[..6] + ".tar");
        using var f = File.Create(archive);
        using var w = new TarWriter(f, TarEntryFormat.Pax);
        void Add(string name, byte[] data) => w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
        Add("abc/layer.tar", layerTar);
        Add(image.ConfigDigest[7..] + ".json", image.Config);
        Add("manifest.json", Encoding.UTF8.GetBytes($"[{{\"Config\":\"{image.ConfigDigest[7..]}.json\",\"RepoTags\":[\"{tag}\"],\"Layers\":[\"abc/layer.tar\"]}}]"));
        return archive;
    }
}
