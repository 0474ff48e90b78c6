using System.Diagnostics;

namespace Crid.Core.Containers;

public sealed partial class ContainerManager
{
    /// <summary>
    /// Rebuilds the store after a (re)start, once the sandboxes are recovered: every record is loaded
    /// and its name reserved; each runtime is told
    /// the complete list of its containers (it deletes what it has beyond them: a create whose record
    /// was never written, killing its monitor first) and says what became of them, exits while the
    /// daemon was down included; then folders without a record (a Create or Remove cut short) and
    /// containers of sandboxes that are gone (a RemovePodSandbox cut short) are deleted; finally the image store drops the holds of containers that no longer exist.
    /// </summary>
    public async Task RecoverAsync(CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(ContainersDir, TraversableDir);
        var loaded = new List<Container>();
        // Deleted once the runtimes have recovered: a monitor a crash left may still be running
        // runc create on that bundle, and is killed first (its cgroup is read from config.json).
        var doomed = new List<string>();
        // The records are read on every core (two small files and a folder listing each: for 1,000
        // containers the largest part of a restart), then taken in one by one, in folder order.
        var dirs = Directory.EnumerateDirectories(ContainersDir).ToArray();
        var read = new (Container? Container, Exception? Error)[dirs.Length];
        Parallel.For(0, dirs.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount, CancellationToken = cancellationToken }, i =>
        {
            try
            {
                var c = ContainerRecord.Load(dirs[i]);
                if (c.Id != Path.GetFileName(dirs[i]))
                    throw new FormatException($"the record names container {c.Id}");
                // A write cut short by the crash leaves its temporary file behind (AtomicFiles).
                foreach (var tmp in Directory.EnumerateFiles(dirs[i], ".*.tmp-*"))
                    File.Delete(tmp);
                read[i] = (c, null);
            }
            catch (Exception e) when (e is IOException or FormatException)
            {
                read[i] = (null, e);
            }
        });
        for (var i = 0; i < dirs.Length; i++)
        {
            var dir = dirs[i];
            if (read[i] is not { Container: { } container })
            {
                var e = read[i].Error!;
                ContainerLog.BrokenContainerRemoved(_log, dir, e is FileNotFoundException ? "no container record" : e.Message);
                doomed.Add(dir);
                continue;
            }
            if (_sandboxes.Find(container.SandboxId) is null)
            {
                // Its runtime part goes with the runtime's recovery below: its id is not in the list.
                ContainerLog.OrphanContainerRemoved(_log, container.Id, container.SandboxId);
                doomed.Add(dir);
                continue;
            }
            _names.Reserve(container.Name, container.Id);
            _containers.Add(container);
            loaded.Add(container);
        }

        // In the store before the runtimes answer: an exit raised meanwhile finds its container.
        foreach (var (handler, runtime) in _runtimes.ByHandler)
        {
            var mine = loaded.Where(c => c.RuntimeHandler == handler).ToList();
            var states = await runtime.RecoverAsync(mine.Select(c => c.Id).ToList(), cancellationToken).ConfigureAwait(false);
            foreach (var c in mine)
            {
                if (states.TryGetValue(c.Id, out var state))
                    ApplyRuntimeState(c, state);
            }
        }
        foreach (var dir in doomed)
            DeleteContainerDir(dir);
        foreach (var c in loaded.Where(c => _runtimes.Find(c.RuntimeHandler) is null))
            RecordLostExit(c, $"its runtime handler \"{c.RuntimeHandler}\" is no longer configured");

        _images.ReleaseAllExcept(loaded.Select(c => c.Id).ToHashSet(StringComparer.Ordinal));
        ContainerLog.Recovered(_log, loaded.Count, loaded.Count(c => c.State == ContainerState.Running), watch.Elapsed.TotalMilliseconds);
    }
}
