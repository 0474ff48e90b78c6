using System.Buffers;
using Crid.Server.Services;
using Google.Protobuf;
using Grpc.Core;
using Runtime.V1;

namespace Crid.Server.Tests;

/// <summary>The list answers written from kept entry bytes are, byte for byte, what Google.Protobuf writes.</summary>
public sealed class ListAnswersTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(1000)]
    public void A_pod_list_is_written_as_protobuf_writes_it(int count)
    {
        var response = new ListPodSandboxResponse();
        for (var i = 0; i < count; i++)
        {
            var pod = Pod(i);
            // Every other entry kept as the mapping keeps its shared ones, the rest serialised on the spot.
            response.Items.Add(i % 2 == 0 ? ListAnswers.Remember(pod) : pod);
        }
        var written = Serialize(ListAnswers.For(Generated<ListPodSandboxResponse>()), response);
        Assert.Equal(response.ToByteArray(), written);
        Assert.Equal(response, ListPodSandboxResponse.Parser.ParseFrom(written));
    }

    [Fact]
    public void A_container_list_is_written_as_protobuf_writes_it()
    {
        var response = new ListContainersResponse();
        for (var i = 0; i < 300; i++)
        {
            var c = new Container
            {
                Id = $"{i:x64}",
                PodSandboxId = $"{i / 10:x64}",
                Metadata = new ContainerMetadata { Name = $"c-{i}", Attempt = (uint)i % 3 },
                Image = new ImageSpec { Image = "registry.local/busybox:1", Annotations = { ["a"] = "b" } },
                ImageRef = "sha256:" + new string('e', 64),
                ImageId = "sha256:" + new string('f', 64),
                State = (ContainerState)(i % 4),
                CreatedAt = 1_700_000_000_000_000_000 + i,
                Labels = { ["container"] = $"c-{i}" },
                // An entry longer than 127 bytes has a two-byte length; one longer than 16 KiB three.
                Annotations = { ["long"] = new string('x', i == 7 ? 20_000 : i % 200) },
            };
            response.Containers.Add(i % 3 == 0 ? c : ListAnswers.Remember(c));
        }
        var written = Serialize(ListAnswers.For(Generated<ListContainersResponse>()), response);
        Assert.Equal(response.ToByteArray(), written);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(1000)]
    public void A_container_stats_list_is_written_as_protobuf_writes_it_and_left_as_it_was(int count)
    {
        // Ten containers' attributes shared by every answer, as StatsCollector shares them; figures new each time.
        var shared = Enumerable.Range(0, 10).Select(i => new ContainerAttributes
        {
            Id = $"{i:x64}",
            Metadata = new ContainerMetadata { Name = $"c-{i}", Attempt = (uint)i },
            Labels = { ["io.kubernetes.pod.name"] = $"pod-{i}", ["n"] = i.ToString() },
            Annotations = { ["long"] = new string('x', i == 7 ? 20_000 : i * 30) },
        }).ToList();
        for (var round = 0; round < 2; round++)
        {
            var response = new ListContainerStatsResponse();
            for (var i = 0; i < count; i++)
            {
                var stats = new ContainerStats { Attributes = i % 11 == 5 ? null : shared[i % 10] };
                if (i % 3 != 0)
                    stats.Cpu = new CpuUsage { Timestamp = 1_700_000_000_000_000_000 + i, UsageCoreNanoSeconds = new UInt64Value { Value = (ulong)i * 1_000_003 } };
                if (i % 4 != 1)
                    stats.Memory = new MemoryUsage { Timestamp = 5, WorkingSetBytes = new UInt64Value { Value = (ulong)i << 20 }, AvailableBytes = i % 2 == 0 ? null : new UInt64Value() };
                if (i % 5 == 2)
                    stats.WritableLayer = new FilesystemUsage { FsId = new FilesystemIdentifier { Mountpoint = "/" }, UsedBytes = new UInt64Value { Value = 4096 } };
                response.Stats.Add(stats);
            }
            var expected = response.ToByteArray();
            var written = Serialize(ListAnswers.For(Generated<ListContainerStatsResponse>()), response);
            Assert.Equal(expected, written);
            // The entries have their attributes back.
            Assert.Equal(expected, response.ToByteArray());
            Assert.Equal(response, ListContainerStatsResponse.Parser.ParseFrom(written));
        }
    }

    [Fact]
    public void A_kept_entry_keeps_the_bytes_it_had_when_kept()
    {
        var pod = ListAnswers.Remember(Pod(1));
        Assert.Equal(pod.ToByteArray(), ListAnswers.BytesOf(pod));
        Assert.Null(ListAnswers.BytesOf(Pod(2)));
    }

    [Fact]
    public void Other_answers_keep_the_generated_marshaller()
    {
        var generated = Generated<VersionResponse>();
        Assert.Same(generated, ListAnswers.For(generated));
    }

    private static PodSandbox Pod(int i) => new()
    {
        Id = $"{i:x64}",
        Metadata = new PodSandboxMetadata { Name = $"pod-{i}", Namespace = "default", Uid = $"uid-{i}", Attempt = (uint)(i % 5) },
        State = i % 3 == 0 ? PodSandboxState.SandboxNotready : PodSandboxState.SandboxReady,
        CreatedAt = 1_700_000_000_000_000_000 + i,
        Labels = { ["app"] = "nginx", ["n"] = i.ToString() },
        Annotations = { ["example.com/note"] = new string('n', i % 300) },
        RuntimeHandler = i % 2 == 0 ? "" : "runc",
    };

    private static Marshaller<T> Generated<T>() where T : class, IMessage<T>, new() =>
        Marshallers.Create((T m, SerializationContext c) =>
        {
            c.SetPayloadLength(m.CalculateSize());
            m.WriteTo(c.GetBufferWriter());
            c.Complete();
        }, c => new MessageParser<T>(() => new T()).ParseFrom(c.PayloadAsReadOnlySequence()));

    private static byte[] Serialize<T>(Marshaller<T> marshaller, T message)
    {
        var context = new Context();
        marshaller.ContextualSerializer(message, context);
        Assert.True(context.Completed);
        Assert.Equal(context.PayloadLength, context.Buffer.WrittenCount);
        return context.Buffer.WrittenSpan.ToArray();
    }

    /// <summary>What Grpc.AspNetCore gives a serializer: a declared length, then a buffer writer.</summary>
    private sealed class Context : SerializationContext
    {
        // Small segments, as a pipe's, so entries cross span boundaries.
        public readonly ArrayBufferWriter<byte> Buffer = new(16);

        public int? PayloadLength { get; private set; }

        public bool Completed { get; private set; }

        public override void SetPayloadLength(int payloadLength) => PayloadLength = payloadLength;

        public override IBufferWriter<byte> GetBufferWriter() => new Chunked(Buffer);

        public override void Complete() => Completed = true;

        public override void Complete(byte[] payload)
        {
            Buffer.Write(payload);
            Completed = true;
        }
    }

    /// <summary>Gives at most 100 bytes per span, whatever is asked beyond that.</summary>
    private sealed class Chunked(ArrayBufferWriter<byte> inner) : IBufferWriter<byte>
    {
        public void Advance(int count) => inner.Advance(count);

        public Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint)[..Math.Max(sizeHint, Math.Min(100, inner.GetMemory(sizeHint).Length))];

        public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;
    }
}
