namespace Crid.Linux;

/// <summary>One cgroup's folders in every mounted hierarchy (v1 controllers, named ones, cgroup2).</summary>
public static class CgroupFolders
{
    /// <summary>
    /// Removes the (empty) cgroup at the absolute <paramref name="cgroupsPath"/> from every cgroup
    /// and cgroup2 mount, as runc's cgroupfs manager would on delete; its parents stay. For a
    /// container whose <c>runc create</c> was killed after it made the cgroup and before it wrote
    /// its state: <c>runc delete</c> then only removes the state folder. A cgroup that still has
    /// processes (or children) stays.
    /// </summary>
    /// <returns>The folders that were removed.</returns>
    public static async Task<IReadOnlyList<string>> RemoveAsync(string cgroupsPath, TimeSpan patience)
    {
        if (!cgroupsPath.StartsWith('/') || cgroupsPath.Split('/').Any(p => p is ".." or "."))
        {
            throw new ArgumentException($"\"{cgroupsPath}\" is not an absolute cgroup path", nameof(cgroupsPath));
        }

        var removed = new List<string>();
        foreach (var mount in Mounts())
        {
            string dir = mount.TrimEnd('/') + "/" + cgroupsPath.Trim('/');
            var wait = System.Diagnostics.Stopwatch.StartNew();
            while (Directory.Exists(dir))
            {
                try
                {
                    // rmdir(2): a cgroup's control files are not real files, so a non-recursive delete is the only one.
                    Directory.Delete(dir);
                    removed.Add(dir);
                }
                catch (IOException) when (wait.Elapsed < patience)
                {
                    // EBUSY while the last killed task is still being released.
                    await Task.Delay(10).ConfigureAwait(false);
                }
                catch (IOException)
                {
                    break;
                }
            }
        }

        return removed;
    }

    /// <summary>The mount points of cgroup and cgroup2 file systems.</summary>
    private static IEnumerable<string> Mounts() =>
        MountTable.OfSelf().Where(m => m.FsType is "cgroup" or "cgroup2").Select(m => m.MountPoint);
}
