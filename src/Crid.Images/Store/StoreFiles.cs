using Crid.Linux;

namespace Crid.Images.Store;

/// <summary>File helpers of the store: atomic replacement, and an exclusive lock shared with `crid import`.</summary>
internal static class StoreFiles
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Temporary file, fsync, rename over the target, fsync of the folder: a crash at any instant
    /// leaves the old content or the new, and the new outlives a host crash too. Not
    /// <paramref name="durable"/>: no fsync, still atomic against a daemon crash (the page cache
    /// outlives it); after a host crash the file is old, new, or empty.
    /// </summary>
    public static void WriteAtomic(string path, ReadOnlySpan<byte> content, string tmpDir, bool durable = true)
    {
        var temp = Path.Combine(tmpDir, $"{Path.GetFileName(path)}.{Environment.ProcessId}-{Environment.CurrentManagedThreadId}-{Random.Shared.Next():x}");
        try
        {
            using (var f = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                BufferSize = 0,
                UnixCreateMode = Private,
            }))
            {
                f.Write(content);
                if (durable)
                    f.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
            temp = null;
            if (durable)
                HostFiles.SyncDirectory(Path.GetDirectoryName(path)!);
        }
        finally
        {
            if (temp is not null)
                File.Delete(temp);
        }
    }

    /// <summary>
    /// flock(LOCK_EX) on <paramref name="path"/>, waiting while another process (an import) holds
    /// it. .NET takes flock(LOCK_EX|LOCK_NB) for FileShare.None on Unix, hence the polling.
    /// </summary>
    public static FileStream Lock(string path, CancellationToken ct = default)
    {
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (File.Exists(path))
            {
                ct.ThrowIfCancellationRequested();
                Thread.Sleep(20);
            }
        }
    }

    /// <summary>Removes a tree without following symbolic links; a missing one is fine.</summary>
    public static void RemoveTree(string path)
    {
        try
        {
            if (Directory.Exists(path))
                Directory.Delete(path, recursive: true);
            else
                File.Delete(path);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
