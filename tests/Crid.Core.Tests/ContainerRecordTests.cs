using Crid.Core.Containers;
using Runtime.V1;
using Container = Crid.Core.Containers.Container;
using ContainerState = Crid.Core.Containers.ContainerState;
using ContainerStatus = Crid.Core.Containers.ContainerStatus;

namespace Crid.Core.Tests;

public sealed class ContainerRecordTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-record-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void A_record_and_its_status_read_back_as_written()
    {
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = "c", Attempt = 2 },
            Image = new ImageSpec { Image = "busybox" },
            Labels = { ["a"] = "b" },
            Mounts = { new Mount { ContainerPath = "/x", HostPath = "/y", Propagation = MountPropagation.PropagationHostToContainer } },
        };
        var c = new Container
        {
            Id = new string('a', 64),
            Name = "k8s_c_p_ns_uid_2",
            SandboxId = new string('b', 64),
            Config = config,
            CreatedAt = 123,
            ImageId = "sha256:" + new string('c', 64),
            ImageName = "docker.io/library/busybox:latest",
            ImageRef = "docker.io/library/busybox@sha256:" + new string('d', 64),
            RuntimeHandler = "kata",
            LogPath = "/var/log/pods/x/c/2.log",
            StopSignal = 3,
            Dir = _dir,
            Status = ContainerRecord.NewStatus(_dir, new ContainerStatus
            {
                State = ContainerState.Exited,
                Pid = 0,
                StartedAt = 5,
                FinishedAt = 6,
                ExitCode = 137,
                Reason = "OOMKilled",
                Message = "m",
                Resources = new LinuxContainerResources { MemoryLimitInBytes = 1 << 20 },
            }),
        };
        c.Status.Save();
        ContainerRecord.Write(c);
        var back = ContainerRecord.Load(_dir);
        Assert.Equal((c.Id, c.Name, c.SandboxId, c.CreatedAt, c.ImageId, c.ImageName, c.ImageRef, c.RuntimeHandler, c.LogPath, c.StopSignal),
            (back.Id, back.Name, back.SandboxId, back.CreatedAt, back.ImageId, back.ImageName, back.ImageRef, back.RuntimeHandler, back.LogPath, back.StopSignal));
        Assert.Equal(config, back.Config);
        Assert.Equal(c.Status.Get(), back.Status.Get() with { Resources = c.Status.Get().Resources });
        Assert.Equal(c.Status.Get().Resources, back.Status.Get().Resources);
    }

    [Fact]
    public void A_broken_record_is_a_format_error()
    {
        File.WriteAllText(Path.Combine(_dir, ContainerRecord.FileName), "{\"version\": 1}");
        Assert.Throws<FormatException>(() => ContainerRecord.Load(_dir));
        var empty = Directory.CreateDirectory(Path.Combine(_dir, "none")).FullName;
        Assert.Throws<FileNotFoundException>(() => ContainerRecord.Load(empty));
    }

    [Theory]
    [InlineData("SIGQUIT", 3)]
    [InlineData("quit", 3)]
    [InlineData("9", 9)]
    [InlineData("SIGRTMIN+3", 37)]
    [InlineData("RTMAX-1", 63)]
    [InlineData("SIGWINCH", 28)]
    public void Stop_signals_parse_as_docker_names_them(string text, int number) => Assert.Equal(number, StopSignals.Parse(text));

    [Theory]
    [InlineData("SIGNOPE")]
    [InlineData("0")]
    [InlineData("65")]
    [InlineData("RTMIN+40")]
    public void Unknown_stop_signals_are_null(string text) => Assert.Null(StopSignals.Parse(text));

    [Fact]
    public void The_configs_stop_signal_wins_over_the_images()
    {
        Assert.Equal(15, StopSignals.Of(new ContainerConfig(), ""));
        Assert.Equal(3, StopSignals.Of(new ContainerConfig(), "SIGQUIT"));
        Assert.Equal(10, StopSignals.Of(new ContainerConfig { StopSignal = Signal.Sigusr1 }, "SIGQUIT"));
        Assert.Equal(37, StopSignals.Of(new ContainerConfig { StopSignal = Signal.Sigrtminplus3 }, ""));
        Assert.Equal(63, StopSignals.Of(new ContainerConfig { StopSignal = Signal.Sigrtmaxminus1 }, ""));
        Assert.Equal(Signal.Sigterm, StopSignals.ToProto(15));
        Assert.Equal(Signal.Sigrtmax, StopSignals.ToProto(64));
        Assert.Throws<Errors.FailedPreconditionException>(() => StopSignals.Of(new ContainerConfig(), "SIGBOGUS"));
    }
}
