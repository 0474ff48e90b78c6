using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// Dedicated (never thread-pool) threads that enter a pod's namespaces with setns(2), do a
/// piece of work, and return to their original namespaces. setns(2) changes only the calling
/// thread for net/ipc/uts, and /proc/sys/net and the ipc sysctls resolve against the namespaces
/// of the thread that opens them, so the work must run on the thread that joined.
/// A thread that cannot return home exits instead of serving another call.
/// </summary>
internal static class NamespaceThreads
{
    private static readonly BlockingCollection<Item> Queue = [];
    private static readonly int[] Flags = [CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS];
    private static readonly string[] Names = ["net", "ipc", "uts"];
    private static readonly Lock StartLock = new();
    private static int s_threads;

    // A worker's own namespaces, opened once: it always returns to them, so they never change.
    [ThreadStatic]
    private static SafeFd[]? t_home;

    internal static int WorkerCount => Math.Clamp(Environment.ProcessorCount, 2, 8);

    /// <summary>Runs <paramref name="work"/> on a dedicated thread inside the given namespaces.</summary>
    /// <param name="targets">nsfs paths to join, indexed like net, ipc, uts; null entries are skipped.</param>
    /// <param name="work">What to do inside.</param>
    /// <param name="useWorkers">Long-lived workers (production); false starts a new thread for the call, to measure.</param>
    internal static void Run(string?[] targets, Action work, bool useWorkers = true)
    {
        var item = new Item(targets, work);
        if (useWorkers)
        {
            EnsureWorkers();
            Queue.Add(item);
            item.Done.Wait();
        }
        else
        {
            var t = new Thread(() =>
            {
                Execute(item);
                DisposeHome();
            })
            { IsBackground = true, Name = "crid-ns-once" };
            t.Start();
            t.Join();
        }

        // Done is not disposed: its Set() may still be returning on the other thread, and without
        // a WaitHandle ever requested it holds no kernel object.
        if (item.Error is not null)
        {
            ExceptionDispatchInfo.Throw(item.Error);
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a namespace worker without blocking the caller: the returned
    /// task completes (or faults with the work's exception) once the worker is back home, so no
    /// thread-pool thread waits for the worker or enters the namespaces.
    /// </summary>
    internal static Task RunAsync(string?[] targets, Action work)
    {
        var item = new Item(targets, work)
        {
            Completion = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously),
        };
        EnsureWorkers();
        Queue.Add(item);
        return item.Completion.Task;
    }

    private static void EnsureWorkers()
    {
        if (Volatile.Read(ref s_threads) >= WorkerCount)
        {
            return;
        }

        lock (StartLock)
        {
            while (s_threads < WorkerCount)
            {
                s_threads++;
                new Thread(WorkerLoop) { IsBackground = true, Name = "crid-ns-worker" }.Start();
            }
        }
    }

    private static void WorkerLoop()
    {
        try
        {
            foreach (var item in Queue.GetConsumingEnumerable())
            {
                if (!Execute(item))
                {
                    return;
                }
            }
        }
        finally
        {
            DisposeHome();
            lock (StartLock)
            {
                s_threads--;
            }

            // A worker that could not get home ends here; a replacement keeps the queue served.
            EnsureWorkers();
        }
    }

    private static void DisposeHome()
    {
        foreach (var fd in t_home ?? [])
        {
            fd.Dispose();
        }

        t_home = null;
    }

    /// <returns>False when the thread could not get back to its namespaces and must end.</returns>
    private static bool Execute(Item item)
    {
        bool clean = true;
        var entered = new bool[Flags.Length];
        SafeFd[]? home = null;
        try
        {
            home = t_home ??= OpenHome();
            for (int i = 0; i < Flags.Length; i++)
            {
                string? target = item.Targets[i];
                if (target is null)
                {
                    continue;
                }

                entered[i] = true;
                using SafeFd fd = OpenNs(target, Names[i]);
                Interop.CheckIo(Interop.Setns(fd, Flags[i]), "setns", target, "setns", Names[i]);
            }

            item.Work();
        }
        catch (Exception e)
        {
            item.Error = e;
        }
        finally
        {
            for (int i = 0; i < Flags.Length; i++)
            {
                if (entered[i])
                {
                    clean &= home is not null && Interop.Setns(home[i], Flags[i]) == 0;
                }
            }

            item.Done.Set();
            if (item.Completion is { } completion)
            {
                if (item.Error is null)
                {
                    completion.TrySetResult();
                }
                else
                {
                    completion.TrySetException(item.Error);
                }
            }
        }

        return clean;
    }

    private static SafeFd[] OpenHome()
    {
        var home = new List<SafeFd>(Flags.Length);
        try
        {
            for (int i = 0; i < Flags.Length; i++)
            {
                home.Add(OpenNs("/proc/thread-self/ns/" + Names[i], Names[i]));
            }
        }
        catch
        {
            home.ForEach(fd => fd.Dispose());
            throw;
        }

        return home.ToArray();
    }

    private static SafeFd OpenNs(string path, string type) => Interop.OpenChecked(path, O_RDONLY | O_CLOEXEC, 0, "setns", type);

    private sealed class Item(string?[] targets, Action work)
    {
        public string?[] Targets { get; } = targets;

        public Action Work { get; } = work;

        public ManualResetEventSlim Done { get; } = new();

        public Exception? Error { get; set; }

        /// <summary>Set by <see cref="RunAsync"/>: completed (after <see cref="Done"/>) instead of being waited on.</summary>
        public TaskCompletionSource? Completion { get; init; }
    }
}
