using System.Buffers;
using System.Diagnostics;
using Converge.Log;
using Converge.Storage;

namespace Converge.Grains.Destage;

public sealed partial class DestageService
{
    /// <summary>
    /// Destages one sealed segment: reads its records from the log (CRC-checked), converts them to extent writes and
    /// applies them to both replicas of every group, in batches; marks the segment destaged once every apply was durable.
    /// Returns the data bytes applied.
    /// </summary>
    private async Task<long> DestageSegmentAsync(Guid segmentId, CancellationToken cancellationToken)
    {
        var log = nodeLog.Log;
        var info = log.GetSegment(segmentId);
        if (info is null || !info.IsSealed || info.IsDestaged)
        {
            return 0;
        }

        var started = Stopwatch.GetTimestamp();
        var map = await grains.GetGrain<IVolumePlacementGrain>(info.VolumeId).GetAsync()
            ?? throw new DestageDeferredException($"volume {info.VolumeId:D} has no placement yet");
        if (map.Deleted)
        {
            log.MarkDestaged(segmentId);
            LogDropped(localNode.Name, segmentId, info.VolumeId);
            return 0;
        }

        // The map may change while the segment is applied (a group moving off a removed node). Marking destaged is
        // safe only when every current replica of every touched group received the applies: otherwise apply again
        // under the new map (LSN-idempotent, so replicas that already have it skip it). See docs/destage.md.
        for (var attempt = 0; attempt < MaxMapAttempts; attempt++)
        {
            var (payloadBytes, touched) = await ApplySegmentAsync(info, map, cancellationToken);
            var current = await grains.GetGrain<IVolumePlacementGrain>(info.VolumeId).GetAsync()
                ?? throw new DestageDeferredException($"volume {info.VolumeId:D} lost its placement");
            if (!current.Deleted && !SameReplicas(map, current, touched))
            {
                map = current;
                continue;
            }

            var status = log.MarkDestaged(segmentId);
            Debug.Assert(status == Grains.Log.MarkDestagedStatus.Ok, "a sealed segment known to the log must accept MarkDestaged");
            LogDestaged(localNode.Name, segmentId, info.VolumeId, info.Records.Count, payloadBytes, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return payloadBytes;
        }

        throw new DestageDeferredException($"the placement of volume {info.VolumeId:D} kept changing while segment {segmentId} was destaged");
    }

    private const int MaxMapAttempts = 3;

    private static bool SameReplicas(PlacementMap applied, PlacementMap current, bool[] touched)
    {
        for (var g = 0; g < touched.Length; g++)
        {
            if (touched[g] && !applied.Groups[g].SameNodes(current.Groups[g]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Applies every record of the segment under <paramref name="map"/>; returns the data bytes and the groups touched.</summary>
    private async Task<(long PayloadBytes, bool[] Touched)> ApplySegmentAsync(Grains.Log.SegmentInfo info, PlacementMap map, CancellationToken cancellationToken)
    {
        var log = nodeLog.Log;
        var touched = new bool[map.GroupCount];
        var batch = new Batch(map, touched);
        long payloadBytes = 0;
        try
        {
            foreach (var entry in info.Records)
            {
                if (entry.Kind is not (LogRecordKind.Write or LogRecordKind.Zero))
                {
                    continue;
                }

                var payload = ReadOnlyMemory<byte>.Empty;
                if (entry.Kind == LogRecordKind.Write)
                {
                    var buffer = batch.Rent(entry.RecordLengthBytes);
                    var length = log.ReadRecord(entry.Address, buffer);
                    if (LogRecord.TryDecode(buffer.AsSpan(0, length), out var header) != LogRecordDecodeStatus.Ok || header.Lsn != entry.Lsn)
                    {
                        throw new InvalidDataException($"record {entry.Lsn} at {entry.Address} does not decode as indexed");
                    }

                    payload = buffer.AsMemory(LogRecord.HeaderLengthBytes, header.PayloadLengthBytes);
                    payloadBytes += payload.Length;
                }

                foreach (var write in DestageConversion.ToExtentWrites(info.VolumeId, entry.Kind, entry.Lsn, entry.OffsetBytes, entry.LengthBytes,
                    payload, map.BlockSizeBytes, map.BlocksPerExtent))
                {
                    batch.Add(write);
                    if (write.Kind == ExtentWriteKind.Zero && batch.WriteCount >= MaxBatchWrites)
                    {
                        // Zero records carry no buffer, so a long trim can flush mid-record.
                        await ApplyBatchAsync(batch, cancellationToken);
                    }
                }

                if (batch.PayloadBytes >= MaxBatchPayloadBytes || batch.WriteCount >= MaxBatchWrites)
                {
                    await ApplyBatchAsync(batch, cancellationToken);
                }
            }

            await ApplyBatchAsync(batch, cancellationToken);
        }
        finally
        {
            batch.ReturnBuffers();
        }

        return (payloadBytes, touched);
    }

    /// <summary>Applies every group's writes to both of its replicas at once; returns when all are durable, else throws.</summary>
    private async Task ApplyBatchAsync(Batch batch, CancellationToken cancellationToken)
    {
        if (batch.WriteCount == 0)
        {
            return;
        }

        cancellationToken.ThrowIfCancellationRequested();
        var calls = new List<Task<ExtentApplyReply>>();
        var targets = new List<string>();
        foreach (var (group, writes) in batch.Groups)
        {
            var replicas = batch.Map.Groups[group];
            var array = writes.ToArray();
            foreach (var node in new[] { replicas.NodeA, replicas.NodeB })
            {
                calls.Add(grains.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(node, batch.Map.VolumeId, group))
                    .ApplyDurableAsync(batch.Map.BlockSizeBytes, array));
                targets.Add($"{node} group {group}");
            }
        }

        try
        {
            await Task.WhenAll(calls);
        }
        catch (Exception) when (calls.Any(c => c.IsCompletedSuccessfully))
        {
            // Report the first failure below with its replica named.
        }

        for (var i = 0; i < calls.Count; i++)
        {
            if (!calls[i].IsCompletedSuccessfully)
            {
                batch.Abandoned = true;
                throw new DestageDeferredException($"replica {targets[i]} failed: {calls[i].Exception?.GetBaseException().Message}");
            }

            if (calls[i].Result.Status != ExtentStatus.Ok)
            {
                throw new DestageDeferredException($"replica {targets[i]} answered {calls[i].Result.Status}: {calls[i].Result.Message}");
            }
        }

        batch.Clear();
    }

    /// <summary>Extent writes grouped by placement group, and the pooled record buffers their payloads point into.</summary>
    private sealed class Batch(PlacementMap map, bool[] touched)
    {
        private readonly List<byte[]> _buffers = [];

        public PlacementMap Map { get; } = map;

        public SortedDictionary<int, List<ExtentWrite>> Groups { get; } = [];

        public int WriteCount { get; private set; }

        public long PayloadBytes { get; private set; }

        public byte[] Rent(int lengthBytes)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(lengthBytes);
            _buffers.Add(buffer);
            return buffer;
        }

        public void Add(ExtentWrite write)
        {
            var group = Map.GroupOfBlock(write.BlockIndex);
            if (!Groups.TryGetValue(group, out var list))
            {
                Groups[group] = list = [];
            }

            list.Add(write);
            touched[group] = true;
            WriteCount++;
            PayloadBytes += write.Payload.Length;
        }

        /// <summary>
        /// Set when an apply failed or timed out: a same-silo replica may still be reading the buffers (immutable
        /// arguments are passed by reference), so they are left to the garbage collector instead of the pool.
        /// </summary>
        public bool Abandoned { get; set; }

        /// <summary>After a durable apply. Applies happen only at record boundaries (or inside a zero record, which has no buffer), so every buffer is done.</summary>
        public void Clear()
        {
            Groups.Clear();
            WriteCount = 0;
            PayloadBytes = 0;
            ReturnBuffers();
        }

        public void ReturnBuffers()
        {
            if (!Abandoned)
            {
                foreach (var buffer in _buffers)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }

            _buffers.Clear();
        }
    }
}
