using Crid.Core.Containers;
using Crid.Linux;
using Microsoft.Extensions.Logging;

namespace Crid.Runtime;

/// <summary>
/// Watches conmon's exit folder with inotify: conmon writes &lt;exit-dir&gt;/&lt;id&gt; through a
/// temporary name and rename(2) (g_file_set_contents), so one IN_MOVED_TO per exit, at once.
/// Every exit file is raised once per watcher; the files present when it starts were written
/// while nobody watched, and are left to recovery.
/// </summary>
internal sealed class ExitWatcher : IDisposable
{
    private readonly string _dir;
    private readonly Func<string, ContainerExit?> _read;
    private readonly Action<ContainerExit> _raise;
    private readonly ILogger _logger;
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private readonly Inotify _inotify = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public ExitWatcher(string dir, Func<string, ContainerExit?> read, Action<ContainerExit> raise, ILogger logger)
    {
        _dir = dir;
        _read = read;
        _raise = raise;
        _logger = logger;

        // Watch first, then list: an exit landing in between is both seen and listed, never lost.
        _inotify.Watch(dir, Inotify.MovedTo);
        lock (_seen)
        {
            foreach (var path in Directory.EnumerateFiles(dir))
            {
                _seen.Add(Path.GetFileName(path));
            }
        }

        _loop = Task.Run(LoopAsync);
    }

    /// <summary>A container was deleted (or is being created again): its next exit file is new.</summary>
    public void Forget(string id)
    {
        lock (_seen)
        {
            _seen.Remove(id);
        }
    }

    /// <summary>An exit reported by other means (recovery): not raised again.</summary>
    public void MarkSeen(string id)
    {
        lock (_seen)
        {
            _seen.Add(id);
        }
    }

    /// <summary>Stops watching; the loop closes the inotify descriptor on its way out.</summary>
    public void Dispose() => _stop.Cancel();

    /// <summary>Completes when the loop has stopped.</summary>
    public Task Stopped => _loop;

    private async Task LoopAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var events = await _inotify.ReadAsync(_stop.Token).ConfigureAwait(false);
                foreach (var e in events)
                {
                    if (e.Overflowed)
                    {
                        RuntimeLog.Rescan(_logger, "inotify queue overflowed", _dir);
                        foreach (var path in Directory.EnumerateFiles(_dir))
                        {
                            Consider(Path.GetFileName(path));
                        }
                    }
                    else if (e.Name.Length > 0)
                    {
                        Consider(e.Name);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            RuntimeLog.WatcherFailed(_logger, e, _dir);
        }
        finally
        {
            _inotify.Dispose();
        }
    }

    private void Consider(string id)
    {
        lock (_seen)
        {
            if (!_seen.Add(id))
            {
                return;
            }
        }

        var exit = _read(id);
        if (exit is null)
        {
            Forget(id); // not an exit file (yet): a later rename may still bring one
            return;
        }

        RuntimeLog.Exited(_logger, exit.Id, exit.ExitCode, exit.OomKilled);
        try
        {
            _raise(exit);
        }
        catch (Exception e)
        {
            RuntimeLog.HandlerFailed(_logger, e, id);
        }
    }
}
