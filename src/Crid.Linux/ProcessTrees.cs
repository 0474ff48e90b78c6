using System.Globalization;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// Whole trees of processes that need not be ours (a detached conmon, the runc it runs, the
/// container runc made), found through /proc and ended without a moment in which they could grow.
/// </summary>
public static class ProcessTrees
{
    /// <summary>
    /// SIGKILLs every process whose argv <paramref name="isRoot"/> accepts, and all their
    /// descendants, and waits until they are gone. Each is stopped first (SIGSTOP) and /proc read
    /// again until it shows nothing new: a stopped process forks no more (a fork that a signal
    /// interrupts is restarted after it, fork(2)), and its children cannot be reparented away while
    /// it lives, so the last reading holds the whole tree. A process is signalled through a pidfd
    /// opened before its identity is checked again, never by a pid that may have been reused.
    /// </summary>
    /// <remarks>
    /// Past <paramref name="limit"/> (a process that stays in an uninterruptible sleep), what was
    /// found is killed and the call returns without waiting further; it throws only when
    /// <paramref name="cancellationToken"/> is cancelled.
    /// </remarks>
    /// <returns>The pids that were killed, roots first.</returns>
    public static async Task<IReadOnlyList<int>> KillAsync(Func<string[], bool> isRoot, TimeSpan limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(isRoot);
        var held = new Dictionary<int, SafeFd>();
        var order = new List<int>();
        var notRoots = new HashSet<int>();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(limit);
        try
        {
            try
            {
                while (true)
                {
                    var found = new List<int>();
                    foreach (var (pid, parent) in ReadParents())
                    {
                        if (held.ContainsKey(pid))
                        {
                            continue;
                        }

                        if (held.ContainsKey(parent))
                        {
                            found.Add(pid);
                        }
                        else if (!notRoots.Contains(pid))
                        {
                            if (Argv(pid) is { } argv && isRoot(argv))
                            {
                                found.Add(pid);
                            }
                            else
                            {
                                notRoots.Add(pid);
                            }
                        }
                    }

                    // Descendants of a new root are found in the next reading, once their parent is held.
                    found.RemoveAll(pid => !Hold(pid, held, isRoot));
                    if (found.Count == 0)
                    {
                        break;
                    }

                    order.AddRange(found);
                    await WaitStoppedAsync(found, deadline.Token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Out of time (a process stuck in an uninterruptible sleep): what was found is killed.
            }
            finally
            {
                // Also when the search failed or ran out of time: nothing is left stopped.
                foreach (var pid in order)
                {
                    Interop.PidfdSendSignal(held[pid], SIGKILL);
                }
            }

            try
            {
                foreach (var pid in order)
                {
                    await FdPoller.Shared.WaitAsync(held[pid], write: false, deadline.Token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // SIGKILLed; one still in an uninterruptible sleep dies when it leaves it.
            }

            return order;
        }
        finally
        {
            foreach (var pidfd in held.Values)
            {
                pidfd.Dispose();
            }
        }
    }

    /// <summary>Opens a pidfd, checks it is still the process found (a root's argv, or a child of a held one), stops it.</summary>
    private static bool Hold(int pid, Dictionary<int, SafeFd> held, Func<string[], bool> isRoot)
    {
        var pidfd = Interop.PidfdOpen(pid);
        if (pidfd.IsInvalid)
        {
            pidfd.Dispose();
            return false;
        }

        bool same = ParentOf(pid) is int parent && (held.ContainsKey(parent) || (Argv(pid) is { } argv && isRoot(argv)));
        if (!same || Interop.PidfdSendSignal(pidfd, SIGSTOP) != 0)
        {
            pidfd.Dispose();
            return false;
        }

        held[pid] = pidfd;
        return true;
    }

    /// <summary>Until each has stopped or died; a process in an uninterruptible sleep stops when it leaves it.</summary>
    private static async Task WaitStoppedAsync(List<int> pids, CancellationToken cancellationToken)
    {
        foreach (var pid in pids)
        {
            while (State(pid) is 'R' or 'S' or 'D' or 'W' or 'P' or 'I')
            {
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Every process's parent, from /proc/&lt;pid&gt;/stat.</summary>
    private static Dictionary<int, int> ReadParents()
    {
        var parents = new Dictionary<int, int>();
        int self = Environment.ProcessId;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && pid != self && pid != 1
                && ParentOf(pid) is int parent)
            {
                parents[pid] = parent;
            }
        }

        return parents;
    }

    private static int? ParentOf(int pid) => Stat(pid) is { } fields && fields.Length > 1 && int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out int ppid) ? ppid : null;

    private static char State(int pid) => Stat(pid) is { } fields && fields[0].Length == 1 ? fields[0][0] : 'X';

    /// <summary>The fields of /proc/&lt;pid&gt;/stat after "(comm)" (which may hold spaces): state, ppid, ...; null when gone.</summary>
    private static string[]? Stat(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int end = stat.LastIndexOf(')');
            return end < 0 || end + 2 >= stat.Length ? null : stat[(end + 2)..].Split(' ');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>/proc/&lt;pid&gt;/cmdline split at its NULs; null when gone, empty for a zombie or a kernel thread.</summary>
    private static string[]? Argv(int pid)
    {
        try
        {
            string cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.Length == 0 ? [] : cmdline.TrimEnd('\0').Split('\0');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
