namespace Crid.Linux;

/// <summary>
/// Finds and kills processes left by a daemon that died (SIGKILL, OOM) in the middle of a
/// RunPodSandbox. A helper is a clone(2) of the daemon running pause(); it cannot be given a parent
/// death signal (the kernel clears pdeath_signal in every new task, and the helper runs no code of
/// ours that could set it), so it outlives the daemon. It holds a copy of every descriptor the
/// daemon had, among them the state dir's lock and the listening socket, so the next daemon could
/// neither lock the state dir nor claim the socket, and it keeps the pod's namespaces alive.
/// </summary>
public static class OrphanHelpers
{
    /// <summary>
    /// SIGKILLs every orphaned helper holding <paramref name="lockPath"/> open: a single-threaded
    /// process (a live .NET daemon never is) whose parent does not hold the lock itself (a live
    /// daemon's helpers mid-Run are left alone). Returns their pids.
    /// </summary>
    public static IReadOnlyList<int> Kill(string lockPath) => Kill(lockPath, out _);

    /// <inheritdoc cref="Kill(string)"/>
    /// <param name="holderCount">how many processes held the lock when we looked, killed or not.</param>
    public static IReadOnlyList<int> Kill(string lockPath, out int holderCount)
    {
        var holders = new HashSet<int>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(proc), out var pid) && pid != Environment.ProcessId && Holds(pid, lockPath))
                holders.Add(pid);
        }

        holderCount = holders.Count;
        var killed = new List<int>();
        foreach (var pid in holders)
        {
            if (Status(pid, "Threads") == 1 && !holders.Contains(Status(pid, "PPid")) && Tmds.Linux.LibC.kill(pid, Tmds.Linux.LibC.SIGKILL) == 0)
                killed.Add(pid);
        }

        return killed;
    }

    /// <summary>
    /// SIGKILLs every init of a child pid namespace living in the namespace <paramref name="pin"/>
    /// holds: the infra process of a Run that a kill cut short after the infra process was spawned
    /// but before its pid namespace was pinned, so nothing else leads to it. Killing a pid
    /// namespace's init kills the whole namespace (pid_namespaces(7)). Returns their pids.
    /// </summary>
    public static IReadOnlyList<int> KillInfraIn(PinnedNamespace pin)
    {
        ArgumentNullException.ThrowIfNull(pin);
        var killed = new List<int>();
        if (pin.Type is not ("net" or "ipc" or "uts") || !pin.IsMounted)
            return killed;
        var target = $"{pin.Type}:[{pin.Inode}]";
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid) || pid == Environment.ProcessId)
                continue;
            try
            {
                if (new FileInfo($"{proc}/ns/{pin.Type}").LinkTarget != target)
                    continue;
                var nspid = File.ReadLines($"{proc}/status").FirstOrDefault(l => l.StartsWith("NSpid:", StringComparison.Ordinal));
                var ids = nspid?.Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
                if (ids is { Length: > 2 } && ids[^1] == "1" && Tmds.Linux.LibC.kill(pid, Tmds.Linux.LibC.SIGKILL) == 0)
                    killed.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Gone meanwhile.
            }
        }

        return killed;
    }

    private static bool Holds(int pid, string path)
    {
        try
        {
            foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                if (new FileInfo(fd).LinkTarget == path)
                    return true;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Gone meanwhile, or a kernel thread.
        }

        return false;
    }

    private static int Status(int pid, string field)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                    return int.Parse(line.AsSpan(field.Length + 1).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        catch (IOException)
        {
        }

        return -1;
    }
}
