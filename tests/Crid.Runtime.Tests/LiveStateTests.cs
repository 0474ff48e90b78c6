using System.Text;

namespace Crid.Runtime.Tests;

/// <summary>
/// The live-state read behind recovery (<see cref="RuncClient.TryReadLiveState"/>) on state.json
/// files written by the test for its own process: runc writes the init's pid and start time right
/// after the id, and only the file's first kilobyte is read then; anywhere else, the whole file is.
/// A wrong start time (a reused pid) or a file that is not runc's gives no live state.
/// </summary>
public sealed class LiveStateTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("crid-livestate-").FullName;
    private readonly RuncClient _runc;
    private readonly int _pid = Environment.ProcessId;
    private readonly ulong _start;

    public LiveStateTests()
    {
        _runc = new RuncClient(new RuntimeOptions { RuntimeRoot = _root, StateDir = Path.Combine(_root, "state") });
        string stat = File.ReadAllText($"/proc/{_pid}/stat");
        _start = ulong.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19]);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Write(string id, string json)
    {
        Directory.CreateDirectory(Path.Combine(_root, id));
        File.WriteAllText(Path.Combine(_root, id, "state.json"), json);
    }

    private static string Config(int bytes) => $"{{\"rootfs\":\"/x\",\"labels\":[\"{new string('l', bytes)}\"],\"mounts\":[{{\"a\":{{\"b\":[1,2,{{}}]}}}}]}}";

    [Fact]
    public void Fields_where_runc_writes_them_give_the_live_init()
    {
        Write("first", $"{{\"id\":\"first\",\"init_process_pid\":{_pid},\"init_process_start\":{_start},\"created\":\"2026-12-02T00:00:00Z\",\"config\":{Config(8000)}}}");
        Assert.Equal((_pid, "running"), (_runc.TryReadLiveState("first")!.Pid, _runc.TryReadLiveState("first")!.Status));
    }

    [Theory]
    [InlineData(900)]
    [InlineData(1000)]
    [InlineData(5000)]
    public void Fields_after_a_large_property_are_read_from_the_whole_file(int size)
    {
        Write("late", $"{{\"id\":\"late\",\"config\":{Config(size)},\"init_process_start\":{_start},\"cgroup_paths\":{{}},\"init_process_pid\":{_pid}}}");
        Assert.Equal(_pid, _runc.TryReadLiveState("late")?.Pid);
    }

    [Fact]
    public void An_exec_fifo_means_created()
    {
        Write("made", $"{{\"id\":\"made\",\"init_process_pid\":{_pid},\"init_process_start\":{_start}}}");
        File.WriteAllText(Path.Combine(_root, "made", "exec.fifo"), "");
        Assert.Equal("created", _runc.TryReadLiveState("made")?.Status);
    }

    [Theory]
    [InlineData("{\"id\":\"x\",\"init_process_pid\":PID,\"init_process_start\":1}")]
    [InlineData("{\"id\":\"x\",\"init_process_pid\":PID}")]
    [InlineData("{\"id\":\"x\",\"init_process_pid\":0,\"init_process_start\":START}")]
    [InlineData("{\"id\":\"x\",\"init_process_pid\":\"PID\",\"init_process_start\":START}")]
    [InlineData("{\"id\":\"x\",\"init_process_pid\":PID,\"init_process_st")]
    [InlineData("[PID,START]")]
    [InlineData("")]
    public void A_reused_pid_or_a_file_that_is_not_runcs_gives_no_live_state(string json)
    {
        Write("x", json.Replace("PID", _pid.ToString(), StringComparison.Ordinal).Replace("START", _start.ToString(), StringComparison.Ordinal));
        Assert.Null(_runc.TryReadLiveState("x"));
    }

    [Fact]
    public void A_truncated_file_longer_than_the_head_gives_no_live_state()
    {
        var json = new StringBuilder($"{{\"id\":\"cut\",\"config\":{Config(3000)},\"init_process_pid\":{_pid},\"init_process_start\":{_start}");
        Write("cut", json.ToString()[..2500]);
        Assert.Null(_runc.TryReadLiveState("cut"));
        Assert.Null(_runc.TryReadLiveState("missing"));
    }
}
