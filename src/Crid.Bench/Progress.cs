using System.Diagnostics;

namespace Crid.Bench;

/// <summary>
/// A line per phase on stderr, rewritten in place on a terminal and printed at each tenth otherwise (concurrent clients may finish out of order; a tenth is printed once),
/// so logs of CI runs stay short. stdout carries only the table.
/// </summary>
internal sealed class Progress
{
    private readonly bool _tty = !Console.IsErrorRedirected;
    private readonly Stopwatch _since = Stopwatch.StartNew();
    private string _phase = "";
    private int _lastTenth = -1;

    public void Tick(string phase, int done, int total)
    {
        lock (this)
        {
            if (phase != _phase)
            {
                _phase = phase;
                _lastTenth = -1;
            }
            var tenth = total == 0 ? 10 : done * 10 / total;
            if (_tty)
            {
                Console.Error.Write($"\r[{_since.Elapsed.TotalSeconds,6:F1}s] {phase}: {done}/{total}   ");
                if (done == total)
                    Console.Error.WriteLine();
            }
            else if (tenth > _lastTenth)
            {
                _lastTenth = tenth;
                Console.Error.WriteLine($"[{_since.Elapsed.TotalSeconds,6:F1}s] {phase}: {done}/{total}");
            }
        }
    }

    public void Note(string text)
    {
        lock (this)
            Console.Error.WriteLine($"[{_since.Elapsed.TotalSeconds,6:F1}s] {text}");
    }
}
