namespace Crid.Core.Storage;

/// <summary>
/// Writes files so that a crash at any instant leaves either the old content or the new, never a
/// half-written file: each goes to a temporary name, then is renamed over the target (rename(2) is
/// atomic). When <c>durable</c>, each temporary is fsynced before its rename and the folder after,
/// so the new content also outlives a host crash; that costs an ext4 journal commit (~3.6 ms here).
/// Without it the write is still atomic against a daemon crash (the page cache survives a SIGKILL),
/// and after a host crash a file is old, new, or (new name, data never written back) empty: never
/// a mix, which a reader must treat as "not there".
/// </summary>
internal static class AtomicFiles
{
    public const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    public const UnixFileMode ReadableFile = PrivateFile | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    public static void Write(string path, ReadOnlySpan<byte> content, UnixFileMode mode, bool durable = true)
    {
        if (durable)
            WriteAll(Path.GetDirectoryName(path)!, [(Path.GetFileName(path), content.ToArray(), mode)], durable);
        else
            Replace(path, content, mode);
    }

    /// <summary>
    /// Writes several files of one folder. When durable, their fsyncs run together, so the
    /// filesystem's journal can commit them at once instead of one commit per file.
    /// </summary>
    public static void WriteAll(string dir, IReadOnlyList<(string Name, byte[] Content, UnixFileMode Mode)> files, bool durable = true)
    {
        if (!durable)
        {
            // open, write, close, rename per file: nothing to flush, so no FileStream (its fstat,
            // flock and lseek are a third of the syscalls of a small file).
            foreach (var (name, content, mode) in files)
                Replace(Path.Combine(dir, name), content, mode);
            return;
        }
        var temps = new string[files.Count];
        try
        {
            var handles = new FileStream[files.Count];
            try
            {
                for (var i = 0; i < files.Count; i++)
                {
                    temps[i] = Path.Combine(dir, $".{files[i].Name}.tmp-{Environment.CurrentManagedThreadId}-{Random.Shared.Next():x}");
                    handles[i] = new FileStream(temps[i], new FileStreamOptions
                    {
                        Mode = FileMode.CreateNew,
                        Access = FileAccess.Write,
                        Share = FileShare.None,
                        BufferSize = 0,
                        UnixCreateMode = files[i].Mode,
                    });
                    handles[i].Write(files[i].Content);
                }
                // BufferSize 0 wrote straight to the page cache: only durability needs a flush.
                if (durable)
                    Parallel.For(0, handles.Length, i => handles[i].Flush(flushToDisk: true));
            }
            finally
            {
                foreach (var h in handles)
                    h?.Dispose();
            }
            for (var i = 0; i < files.Count; i++)
            {
                File.Move(temps[i], Path.Combine(dir, files[i].Name), overwrite: true);
                temps[i] = null!;
            }
            if (durable)
                SyncDirectory(dir);
        }
        finally
        {
            foreach (var t in temps)
            {
                if (t is not null)
                    File.Delete(t);
            }
        }
    }

    /// <summary>
    /// Creates a file that does not exist yet (O_EXCL), in place, without a temporary and a rename:
    /// for files nothing trusts until a later commit (the files of a sandbox folder whose record is
    /// not written yet: recovery deletes a folder without a record), or whose torn content could
    /// only be left by a crash before anything relies on them (see <see cref="Crid.Core.Sandboxes.PinIntents"/>).
    /// </summary>
    public static void WriteNew(string path, ReadOnlySpan<byte> content, UnixFileMode mode, (uint Uid, uint Gid)? owner = null) =>
        Crid.Linux.HostFiles.WriteNew(path, content, mode, owner);

    /// <summary>Atomic, not durable: a temporary beside the target, renamed over it.</summary>
    private static void Replace(string path, ReadOnlySpan<byte> content, UnixFileMode mode)
    {
        var temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.tmp-{Environment.CurrentManagedThreadId}-{Random.Shared.Next():x}");
        Crid.Linux.HostFiles.WriteNew(temp, content, mode);
        try
        {
            Crid.Linux.HostFiles.Rename(temp, path);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    public static void SyncDirectory(string dir) => Crid.Linux.HostFiles.SyncDirectory(dir);
}
