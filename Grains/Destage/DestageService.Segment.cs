using System.Diagnostics;
using Converge.Buffers;
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
                    // Verified on the way out of the log (frame and record CRC-32C, one pass).
                    log.ReadRecord(entry.Address, buffer, out var header);
                    if (header.Lsn != entry.Lsn)
                    {
                        throw new InvalidDataException($"record {entry.Lsn} at {entry.Address} holds LSN {header.Lsn}, not the indexed one");
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

    /// <summary>
    /// Applies every group's writes to both of its replicas at once; returns when all are durable, else throws. A replica
    /// on this node is applied directly; one on another node gets the writes over the data channel, encoded once per
    /// group (at most <see cref="DataChannel.DataFrameHeader.MaxApplyBodyBytes"/> per frame) for every remote replica.
    /// </summary>
    private async Task ApplyBatchAsync(Batch batch, CancellationToken cancellationToken)
    {
        if (batch.WriteCount == 0)
        {
            return;
        }

        cancellationToken.ThrowIfCancellationRequested();
        var calls = new List<Task<ExtentApplyReply>>();
        var targets = new List<string>();
        var bodies = new List<byte[]>();
        var map = batch.Map;
        try
        {
            // Every frame is encoded before any apply starts, and remote applies (which only borrow the frame bodies) start
            // before local ones (which read the record buffers): the record buffers go back to the pool only once no
            // apply of this batch can still be reading them.
            var remote = new List<(string Node, int Group, ReadOnlyMemory<byte> Body)>();
            foreach (var (group, writes) in batch.Groups)
            {
                var replicas = map.Groups[group];
                foreach (var (from, count) in replicas.NodeA == localNode.Name && replicas.NodeB == localNode.Name ? [] : FrameSlices(writes))
                {
                    var slice = writes.GetRange(from, count);
                    var body = LargeBuffers.Rent(DataChannel.ApplyFrame.EncodedLength(slice));
                    bodies.Add(body);
                    var length = DataChannel.ApplyFrame.Encode(body, map.VolumeId, group, map.BlockSizeBytes, slice);
                    foreach (var node in new[] { replicas.NodeA, replicas.NodeB }.Where(n => n != localNode.Name))
                    {
                        remote.Add((node, group, body.AsMemory(0, length)));
                    }
                }
            }

            foreach (var (node, group, body) in remote)
            {
                calls.Add(dataChannel.ApplyAsync(node, body));
                targets.Add($"{node} group {group}");
            }

            foreach (var (group, writes) in batch.Groups)
            {
                var replicas = map.Groups[group];
                if (replicas.NodeA == localNode.Name || replicas.NodeB == localNode.Name)
                {
                    calls.Add(applier.ApplyAsync(map.VolumeId, group, map.BlockSizeBytes, writes));
                    targets.Add($"{localNode.Name} group {group}");
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
        }
        finally
        {
            // A body stays borrowed while a Faulted apply may still be in a send: leave those to the garbage collector.
            if (calls.All(c => c.IsCompletedSuccessfully && c.Result.Status != ExtentStatus.Faulted))
            {
                foreach (var body in bodies)
                {
                    LargeBuffers.Return(body);
                }
            }
        }

        for (var i = 0; i < calls.Count; i++)
        {
            if (!calls[i].IsCompletedSuccessfully)
            {
                throw new DestageDeferredException($"replica {targets[i]} failed: {calls[i].Exception?.GetBaseException().Message}");
            }

            if (calls[i].Result.Status != ExtentStatus.Ok)
            {
                throw new DestageDeferredException($"replica {targets[i]} answered {calls[i].Result.Status}: {calls[i].Result.Message}");
            }
        }

        batch.Clear();
    }

    /// <summary>Splits one group's writes into runs whose apply bodies each fit one data-channel frame.</summary>
    private static IEnumerable<(int From, int Count)> FrameSlices(List<ExtentWrite> writes)
    {
        var from = 0;
        long bytes = DataChannel.ApplyFrame.HeaderLengthBytes;
        for (var i = 0; i < writes.Count; i++)
        {
            var size = DataChannel.ApplyFrame.WriteHeaderLengthBytes + writes[i].Payload.Length;
            if (i > from && bytes + size > DataChannel.DataFrameHeader.MaxApplyBodyBytes)
            {
                yield return (from, i - from);
                from = i;
                bytes = DataChannel.ApplyFrame.HeaderLengthBytes;
            }

            bytes += size;
        }

        yield return (from, writes.Count - from);
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
            var buffer = LargeBuffers.Rent(lengthBytes);
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

        /// <summary>After a durable apply. Applies happen only at record boundaries (or inside a zero record, which has no buffer), so every buffer is done.</summary>
        public void Clear()
        {
            Groups.Clear();
            WriteCount = 0;
            PayloadBytes = 0;
            ReturnBuffers();
        }

        /// <summary>
        /// Every apply that read these buffers has completed: applies on this node are awaited, and remote replicas
        /// get copies in their frame bodies.
        /// </summary>
        public void ReturnBuffers()
        {
            foreach (var buffer in _buffers)
            {
                LargeBuffers.Return(buffer);
            }

            _buffers.Clear();
        }
    }
}
