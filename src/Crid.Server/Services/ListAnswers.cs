using System.Buffers;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Grpc.Core;
using Runtime.V1;

namespace Crid.Server.Services;

/// <summary>
/// ListPodSandbox and ListContainers answers written from each entry's bytes, serialised once.
/// </summary>
/// <remarks>
/// <para>
/// Why: kubelet lists every pod and every container every second. The entries themselves are
/// built once per sandbox or container and state (<see cref="SandboxMapping.ToPodSandbox"/>,
/// <see cref="ContainerMapping.ToContainer"/>), but Google.Protobuf serialised all of them again on
/// each call, twice over in effect (CalculateSize walks every label and annotation map, then
/// WriteTo walks them again): about 2.4 ms of CPU for 1,000 pods (225 KiB) on this kind of machine,
/// against 0.02 ms for copying the same bytes (docs/benchmark.md).
/// </para>
/// <para>
/// How: the shared entries get their bytes when they are built (<see cref="Remember{T}"/>); the
/// answer's marshaller writes field 1 (the only field of both answers) as tag, length and those
/// bytes, in order, which is byte for byte what Google.Protobuf writes. An entry without bytes (none
/// today) is serialised on the spot. Correctness rests on the entries being read-only once built,
/// which the mappings already demand; a new state builds a new entry and so new bytes.
/// </para>
/// </remarks>
internal static class ListAnswers
{
    /// <summary>The protobuf tag of field 1, length-delimited: <c>(1 &lt;&lt; 3) | 2</c>.</summary>
    private const byte ItemTag = 0x0A;

    private static readonly ConditionalWeakTable<IMessage, byte[]> Bytes = new();

    /// <summary>Keeps the serialised form of a shared, read-only entry; returns the entry.</summary>
    public static T Remember<T>(T entry) where T : class, IMessage
    {
        Keep(entry);
        return entry;
    }

    /// <summary>Keeps the serialised form of a shared, read-only entry; returns the bytes.</summary>
    private static byte[] Keep(IMessage entry)
    {
        var bytes = entry.ToByteArray();
        Bytes.AddOrUpdate(entry, bytes);
        return bytes;
    }

    /// <summary>The kept bytes of an entry, or null when it has none.</summary>
    internal static byte[]? BytesOf(IMessage entry) => Bytes.TryGetValue(entry, out var bytes) ? bytes : null;

    /// <summary>The marshaller for this response type, or <paramref name="generated"/> for any other.</summary>
    public static Marshaller<TResponse> For<TResponse>(Marshaller<TResponse> generated) where TResponse : class
    {
        if (typeof(TResponse) == typeof(ListPodSandboxResponse))
            return (Marshaller<TResponse>)(object)Create<ListPodSandboxResponse, PodSandbox>(
                (Marshaller<ListPodSandboxResponse>)(object)generated, r => r.Items);
        if (typeof(TResponse) == typeof(ListContainersResponse))
            return (Marshaller<TResponse>)(object)Create<ListContainersResponse, Container>(
                (Marshaller<ListContainersResponse>)(object)generated, r => r.Containers);
        if (typeof(TResponse) == typeof(ListContainerStatsResponse))
            return (Marshaller<TResponse>)(object)Marshallers.Create<ListContainerStatsResponse>(
                (response, context) => WriteStats(response.Stats, context), ((Marshaller<ListContainerStatsResponse>)(object)generated).ContextualDeserializer);
        return generated;
    }

    /// <summary>
    /// ListContainerStats' answer: each entry's attributes (id, metadata, labels, annotations: shared
    /// by every answer and read-only, <c>StatsCollector</c> builds them once per container) from
    /// their kept bytes, kept at their first answer; the figures, new on every call, serialised
    /// here. Byte for byte what Google.Protobuf writes (attributes are field 1, written first).
    /// The entries are this call's own: their attributes are unset while they are written, then put back.
    /// </summary>
    internal static void WriteStats(RepeatedField<ContainerStats> items, SerializationContext context)
    {
        var count = items.Count;
        var attributes = ArrayPool<ContainerAttributes?>.Shared.Rent(Math.Max(count, 1));
        var attributeBytes = ArrayPool<byte[]?>.Shared.Rent(Math.Max(count, 1));
        var lengths = ArrayPool<int>.Shared.Rent(Math.Max(count, 1));
        try
        {
            long total = 0;
            for (var i = 0; i < count; i++)
            {
                var entry = items[i];
                var a = attributes[i] = entry.Attributes;
                var bytes = attributeBytes[i] = a is null ? null : BytesOf(a) ?? Keep(a);
                entry.Attributes = null;
                var length = entry.CalculateSize() + (bytes is null ? 0 : 1 + CodedOutputStream.ComputeLengthSize(bytes.Length) + bytes.Length);
                lengths[i] = length;
                total += 1 + CodedOutputStream.ComputeLengthSize(length) + length;
            }
            SetLength(context, total, count);
            var writer = context.GetBufferWriter();
            for (var i = 0; i < count; i++)
            {
                WriteHead(writer, lengths[i]);
                if (attributeBytes[i] is { } bytes)
                    WriteEntry(writer, bytes);
                items[i].WriteTo(writer);
            }
            context.Complete();
        }
        finally
        {
            for (var i = 0; i < count; i++)
                if (attributes[i] is { } a)
                    items[i].Attributes = a;
            ArrayPool<ContainerAttributes?>.Shared.Return(attributes, clearArray: true);
            ArrayPool<byte[]?>.Shared.Return(attributeBytes, clearArray: true);
            ArrayPool<int>.Shared.Return(lengths);
        }
    }

    private static Marshaller<TResponse> Create<TResponse, TItem>(Marshaller<TResponse> generated, Func<TResponse, RepeatedField<TItem>> items)
        where TResponse : class where TItem : class, IMessage =>
        Marshallers.Create((response, context) => Write(items(response), context), generated.ContextualDeserializer);

    /// <summary>Writes the answer: for each entry, tag 1, its length as a varint, its bytes.</summary>
    internal static void Write<TItem>(RepeatedField<TItem> items, SerializationContext context) where TItem : class, IMessage
    {
        var count = items.Count;
        var parts = ArrayPool<byte[]>.Shared.Rent(Math.Max(count, 1));
        try
        {
            long total = 0;
            for (var i = 0; i < count; i++)
            {
                var entry = items[i];
                var bytes = BytesOf(entry) ?? entry.ToByteArray();
                parts[i] = bytes;
                total += 1 + CodedOutputStream.ComputeLengthSize(bytes.Length) + bytes.Length;
            }
            SetLength(context, total, count);
            var writer = context.GetBufferWriter();
            for (var i = 0; i < count; i++)
                WriteEntry(writer, parts[i]);
            context.Complete();
        }
        finally
        {
            ArrayPool<byte[]>.Shared.Return(parts, clearArray: true);
        }
    }

    /// <summary>The answer's length, told to gRPC before it is written; one gRPC message holds at most 2 GiB.</summary>
    private static void SetLength(SerializationContext context, long total, int count)
    {
        if (total > int.MaxValue)
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"the answer of {count} entries is {total} bytes, more than one gRPC message holds"));
        context.SetPayloadLength((int)total);
    }

    /// <summary>Field 1's tag and a length as a varint (at most 1 + 5 bytes).</summary>
    private static void WriteHead(IBufferWriter<byte> writer, int length)
    {
        var head = writer.GetSpan(6);
        head[0] = ItemTag;
        var n = 1;
        for (var rest = (uint)length; ; rest >>= 7)
        {
            if (rest < 0x80)
            {
                head[n++] = (byte)rest;
                break;
            }
            head[n++] = (byte)(rest | 0x80);
        }
        writer.Advance(n);
    }

    private static void WriteEntry(IBufferWriter<byte> writer, byte[] bytes)
    {
        // Tag and length first, then the entry, in as many spans as the writer gives.
        WriteHead(writer, bytes.Length);
        ReadOnlySpan<byte> rest = bytes;
        while (!rest.IsEmpty)
        {
            var span = writer.GetSpan(Math.Min(rest.Length, 4096));
            var chunk = Math.Min(span.Length, rest.Length);
            rest[..chunk].CopyTo(span);
            writer.Advance(chunk);
            rest = rest[chunk..];
        }
    }
}
