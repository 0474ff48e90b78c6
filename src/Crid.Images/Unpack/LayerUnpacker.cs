using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using Crid.Linux;
using Crid.Linux.Unpack;

namespace Crid.Images.Unpack;

/// <summary>A layer refused: its content broke a rule (a path out of the layer, a wrong digest).</summary>
public sealed class LayerException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>What an unpacked layer holds: its uncompressed digest and its size on disk, roughly.</summary>
public sealed record LayerStats(string DiffId, string CompressedDigest, long CompressedSize, long Bytes, long Inodes);

/// <summary>
/// Applies one layer tar (image-spec layer.md) to an empty folder, entry by entry with
/// System.Formats.Tar's TarReader: owners, modes, times, xattrs, hard and symbolic links,
/// devices, and whiteouts in overlayfs's form (<c>.wh.x</c> becomes a 0/0 character device,
/// <c>.wh..wh..opq</c> the folder's trusted.overlay.opaque=y), so the folder can be a lowerdir.
/// Names with "..", absolute names and hard links out of the layer are refused; every write goes
/// through <see cref="LayerTree"/>, which never follows a symbolic link.
/// </summary>
public static class LayerUnpacker
{
    private const string WhiteoutPrefix = ".wh.";
    private const string OpaqueMarker = ".wh..wh..opq";

    /// <summary>
    /// Unpacks <paramref name="blob"/> (tar, tar+gzip or tar+zstd, told apart by magic bytes) into
    /// <paramref name="folder"/>, reading it to the end so both digests cover every byte.
    /// </summary>
    public static LayerStats Unpack(Stream blob, string folder)
    {
        using var compressed = new HashingStream(blob);
        var magic = new byte[4];
        var got = 0;
        while (got < magic.Length)
        {
            var n = compressed.Read(magic, got, magic.Length - got);
            if (n == 0)
                break;
            got += n;
        }
        var raw = new PrefixedStream(magic, got, compressed);
        Stream decompressed = got >= 2 && magic[0] == 0x1f && magic[1] == 0x8b ? new GZipStream(raw, CompressionMode.Decompress)
            : got == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd ? new ZstdSharp.DecompressionStream(raw)
            : raw;
        using var _ = decompressed;
        using var tar = new HashingStream(decompressed);
        long bytes, inodes;
        try
        {
            (bytes, inodes) = Apply(tar, folder);
        }
        catch (InvalidDataException e)
        {
            throw new LayerException($"the layer is not a valid tar{(decompressed == raw ? "" : " inside its compression")}: {e.Message}", e);
        }
        catch (Exception e) when (e is FormatException or EndOfStreamException)
        {
            throw new LayerException($"the layer is not a valid tar (cut short?): {e.Message}", e);
        }
        string diffId;
        try
        {
            diffId = tar.DrainAndDigest();
        }
        catch (InvalidDataException e)
        {
            throw new LayerException($"the layer's compressed stream is damaged: {e.Message}", e);
        }
        var digest = compressed.DrainAndDigest();
        return new LayerStats(diffId, digest, compressed.Count, bytes, inodes);
    }

    private static (long Bytes, long Inodes) Apply(Stream tarStream, string folder)
    {
        long bytes = 0, inodes = 0;
        var folders = new List<(string Path, DateTimeOffset Mtime)>();
        using var tree = LayerTree.Open(folder);
        using var reader = new TarReader(tarStream, leaveOpen: true);
        TarEntry? entry;
        while ((entry = reader.GetNextEntry(copyData: false)) is not null)
        {
            if (entry.EntryType is TarEntryType.GlobalExtendedAttributes)
                continue;
            var path = CleanName(entry.Name, "entry");
            var slash = path.LastIndexOf('/');
            var parent = slash < 0 ? "" : path[..slash];
            var name = slash < 0 ? path : path[(slash + 1)..];
            inodes++;
            try
            {
                if (path.Length == 0)
                {
                    // "./": the layer's root; its metadata is the lowerdir's own and stays ours.
                    continue;
                }
                if (name == OpaqueMarker)
                {
                    tree.SetOpaque(parent);
                    continue;
                }
                if (name.StartsWith(WhiteoutPrefix, StringComparison.Ordinal))
                {
                    var hidden = name[WhiteoutPrefix.Length..];
                    if (hidden.Length == 0 || hidden is "." or "..")
                        throw new LayerException($"entry \"{entry.Name}\": a whiteout of nothing; refused");
                    tree.Whiteout(parent.Length == 0 ? hidden : $"{parent}/{hidden}");
                    continue;
                }
                var mode = (uint)entry.Mode;
                switch (entry.EntryType)
                {
                    case TarEntryType.Directory:
                        tree.MakeDirectory(path, mode);
                        Finish(tree, path, entry, mode, isSymlink: false);
                        folders.Add((path, entry.ModificationTime));
                        continue;
                    case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                        using (var file = tree.CreateFile(path))
                        {
                            entry.DataStream?.CopyTo(file);
                        }
                        bytes += entry.Length;
                        break;
                    case TarEntryType.SymbolicLink:
                        if (entry.LinkName.Length == 0 || entry.LinkName.Contains('\0'))
                            throw new LayerException($"entry \"{entry.Name}\": a symbolic link without a target; refused");
                        // The target is stored, never followed here: inside the container it resolves
                        // against the container's root, and LayerTree walks no symlink.
                        tree.Symlink(path, entry.LinkName);
                        Finish(tree, path, entry, mode, isSymlink: true);
                        continue;
                    case TarEntryType.HardLink:
                        tree.HardLink(path, CleanName(entry.LinkName, "hard link target"));
                        continue;
                    case TarEntryType.CharacterDevice:
                        tree.MakeNode(path, LayerTree.NodeKind.CharDevice, mode, Major(entry), Minor(entry));
                        break;
                    case TarEntryType.BlockDevice:
                        tree.MakeNode(path, LayerTree.NodeKind.BlockDevice, mode, Major(entry), Minor(entry));
                        break;
                    case TarEntryType.Fifo:
                        tree.MakeNode(path, LayerTree.NodeKind.Fifo, mode, 0, 0);
                        break;
                    default:
                        throw new LayerException($"entry \"{entry.Name}\": tar entry type {entry.EntryType} is not supported in a layer; refused");
                }
                Finish(tree, path, entry, mode, isSymlink: false);
            }
            catch (UnsafePathException e)
            {
                throw new LayerException($"entry \"{entry.Name}\": {e.Message}", e);
            }
            catch (SyscallException e) when (entry.EntryType == TarEntryType.HardLink && e.Errno == 2 /* ENOENT */)
            {
                throw new LayerException($"entry \"{entry.Name}\": hard link to \"{entry.LinkName}\", which is not in this layer; refused", e);
            }
        }
        // Creating entries inside a folder changed its mtime: the layer's times go on last, deepest first.
        for (var i = folders.Count - 1; i >= 0; i--)
        {
            if (LayerTree.IsDirectoryType(tree.TypeOf(folders[i].Path)))
                tree.SetTimes(folders[i].Path, folders[i].Mtime, folders[i].Mtime);
        }
        return (bytes, inodes);
    }

    private static uint Major(TarEntry e) => (uint)((e as PosixTarEntry)?.DeviceMajor ?? 0);

    private static uint Minor(TarEntry e) => (uint)((e as PosixTarEntry)?.DeviceMinor ?? 0);

    private static void Finish(LayerTree tree, string path, TarEntry entry, uint mode, bool isSymlink)
    {
        tree.SetOwnerAndMode(path, (uint)entry.Uid, (uint)entry.Gid, mode, isSymlink);
        if (entry is PaxTarEntry pax)
        {
            foreach (var (key, value) in pax.ExtendedAttributes)
            {
                // PAX records of xattrs: SCHILY.xattr.<name> (GNU tar, Go's archive/tar).
                // System.Formats.Tar hands PAX values over as UTF-8 text, so a binary value that is
                // not valid UTF-8 (a security.capability blob) cannot be restored byte for byte.
                if (!key.StartsWith("SCHILY.xattr.", StringComparison.Ordinal))
                    continue;
                var attribute = key["SCHILY.xattr.".Length..];
                // overlayfs's own attributes come from whiteout entries only: a layer that sets
                // trusted.overlay.* itself could redirect lookups into other layers.
                if (attribute.StartsWith("trusted.overlay.", StringComparison.Ordinal))
                    continue;
                tree.SetXattr(path, attribute, Encoding.UTF8.GetBytes(value));
            }
        }
        if (entry.EntryType != TarEntryType.Directory)
            tree.SetTimes(path, entry.ModificationTime, entry.ModificationTime);
    }

    /// <summary>
    /// A tar name as a relative path of plain components: "./" and "//" dropped; ".." and absolute
    /// names refused, so nothing can name a place outside the layer.
    /// </summary>
    internal static string CleanName(string name, string what)
    {
        if (name.StartsWith('/'))
            throw new LayerException($"{what} \"{name}\" is an absolute path; refused");
        if (name.Contains('\0'))
            throw new LayerException($"{what} \"{name.Replace("\0", "\\0")}\" contains NUL; refused");
        var parts = name.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var kept = new List<string>(parts.Length);
        foreach (var p in parts)
        {
            if (p == ".")
                continue;
            if (p == "..")
                throw new LayerException($"{what} \"{name}\" climbs out with \"..\"; refused");
            kept.Add(p);
        }
        return string.Join('/', kept);
    }
}
