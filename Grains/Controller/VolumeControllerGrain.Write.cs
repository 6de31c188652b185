using Converge.DataPath;
using Converge.Log;

namespace Converge.Grains.Controller;

public sealed partial class VolumeControllerGrain
{
    /// <summary>
    /// The largest payload of one log record (the log's largest record holds exactly this); larger writes become several
    /// records written in parallel, split on multiples of this size so that pieces share no block. 1 MiB: every record
    /// costs a frame each way on the data channel, a log frame, an index entry and its own destage and apply work on
    /// every mirror, so fewer, larger records spend less CPU per byte. With 64 KiB records (chosen when records were
    /// grain calls and their buffers large objects for the collector; both are gone, see the data channel and
    /// <c>LargeBuffers</c>), 1 MiB sequential writes at queue depth 8 ran at 217-221 MB/s and 7.8-8.1 s of silo CPU per
    /// GiB, against 244-260 MB/s and 6.4-6.9 s/GiB with 1 MiB records, and a lone 1 MiB write took 4.1-4.4 ms (p50)
    /// against 3.0-3.2 ms (BENCHMARKS.md, 2026-11-29 fourth session notes). The cost: a read the log serves (a dirty
    /// block missing from every cache) reads and checks its whole record, up to 1 MiB, and a connection carries a 1 MiB
    /// frame before the small appends queued behind it.
    /// </summary>
    private const int MaxRecordPayloadBytes = 1024 * 1024;

    public async Task<IoStatus> WriteAcknowledgedAsync(long offsetBytes, ReadOnlyMemory<byte> data, long notAfterUtcTicks = 0)
    {
        if (!await EnsureServingAsync())
        {
            return IoStatus.NotAttached;
        }

        if (!InRange(offsetBytes, data.Length) || data.Length == 0)
        {
            return IoStatus.OutOfRange;
        }

        MarkWritten(offsetBytes, data.Length);

        if (data.Length <= MaxRecordPayloadBytes - (2 * BlockSizeBytes))
        {
            return await WriteRecordAsync(offsetBytes, data, notAfterUtcTicks);
        }

        // Split on record-size boundaries, so pieces share no block and need no ordering between them.
        var pieces = new List<Task<IoStatus>>();
        var position = offsetBytes;
        var end = offsetBytes + data.Length;
        while (position < end)
        {
            var pieceEnd = Math.Min(end, ((position / MaxRecordPayloadBytes) + 1) * MaxRecordPayloadBytes);
            pieces.Add(WriteRecordAsync(position, data.Slice((int)(position - offsetBytes), (int)(pieceEnd - position)), notAfterUtcTicks));
            position = pieceEnd;
        }

        var statuses = await Task.WhenAll(pieces);
        return statuses.FirstOrDefault(s => s != IoStatus.Ok, IoStatus.Ok);
    }

    private async Task<IoStatus> WriteRecordAsync(long offsetBytes, ReadOnlyMemory<byte> data, long notAfterUtcTicks)
    {
        BeginIo();
        try
        {
            var bs = BlockSizeBytes;
            var first = offsetBytes / bs;
            var last = (offsetBytes + data.Length - 1) / bs;
            using var held = await _locks.AcquireAsync(first, last);
            var alignedStart = first * bs;
            var alignedLength = (int)((last - first + 1) * bs);
            byte[]? merged = null;
            if (alignedStart != offsetBytes || alignedLength != data.Length)
            {
                // Records hold whole blocks: read the partial edge blocks under the lock, then overlay the new bytes.
                merged = new byte[alignedLength];
                if (offsetBytes != alignedStart)
                {
                    var head = await ReadBlocksAsync(first, 1);
                    if (head.Status != IoStatus.Ok)
                    {
                        return head.Status;
                    }

                    head.Data.CopyTo(merged, 0);
                }

                if ((offsetBytes + data.Length) % bs != 0 && (last != first || offsetBytes == alignedStart))
                {
                    var tail = await ReadBlocksAsync(last, 1);
                    if (tail.Status != IoStatus.Ok)
                    {
                        return tail.Status;
                    }

                    tail.Data.CopyTo(merged, (int)((last - first) * bs));
                }
            }

            if (WriteDeadline.Passed(notAfterUtcTicks))
            {
                // Its caller has given up or is about to: applied now, it could overwrite a write issued after it failed.
                // Nor is data read any more: the caller may have reused the buffer behind it (see AppendToMirrorsAsync).
                ControllerInstruments.ExpiredWrites.Add(1);
                return IoStatus.IoError;
            }

            var payload = data;
            if (merged is not null)
            {
                data.Span.CopyTo(merged.AsSpan((int)(offsetBytes - alignedStart)));
                payload = merged;
            }

            var lsn = new Lsn(AttachedEpoch, ++_sequence);
            var header = LogRecordHeader.ForWrite(VolumeId, lsn, Guid.Empty, (ulong)alignedStart, payload.Length);
            var (status, segment) = await AppendToMirrorsAsync(header, payload, notAfterUtcTicks);
            if (status == IoStatus.Ok)
            {
                NoteAppended(segment!, payload.Length);
            }

            // The caller's buffer is cached only while its deadline holds: an append that took longer may have outlived
            // the caller's patience, and the buffer its reuse. The log has the record either way; a read fetches it.
            var cacheable = status == IoStatus.Ok && (merged is not null || !WriteDeadline.Passed(notAfterUtcTicks));
            for (var block = first; block <= last; block++)
            {
                if (status == IoStatus.Ok)
                {
                    _dirty[block] = new DirtyEntry(lsn, segment!, Zero: false);
                }

                if (cacheable)
                {
                    cache.Put(VolumeId, block, lsn, payload.Span.Slice((int)((block - first) * bs), bs));
                }
                else
                {
                    cache.Invalidate(VolumeId, block);
                }
            }

            return status;
        }
        catch (DataPathException)
        {
            // Detached underneath this I/O (a close gave up waiting for it): nothing was acknowledged.
            return IoStatus.NotAttached;
        }
        finally
        {
            EndIo();
        }
    }

    public async Task<IoStatus> ZeroAcknowledgedAsync(long offsetBytes, long lengthBytes, long notAfterUtcTicks = 0)
    {
        if (!await EnsureServingAsync())
        {
            return IoStatus.NotAttached;
        }

        if (!InRange(offsetBytes, lengthBytes) || lengthBytes == 0)
        {
            return IoStatus.OutOfRange;
        }

        MarkWritten(offsetBytes, lengthBytes);

        var bs = BlockSizeBytes;
        var end = offsetBytes + lengthBytes;
        var alignedStart = (offsetBytes + bs - 1) / bs * bs;
        var alignedEnd = end / bs * bs;
        if (alignedStart >= alignedEnd)
        {
            // Inside one block: an ordinary read-modify-write of zeros.
            return await WriteAcknowledgedAsync(offsetBytes, new byte[lengthBytes], notAfterUtcTicks);
        }

        if (alignedStart > offsetBytes)
        {
            var head = await WriteAcknowledgedAsync(offsetBytes, new byte[alignedStart - offsetBytes], notAfterUtcTicks);
            if (head != IoStatus.Ok)
            {
                return head;
            }
        }

        if (end > alignedEnd)
        {
            var tail = await WriteAcknowledgedAsync(alignedEnd, new byte[end - alignedEnd], notAfterUtcTicks);
            if (tail != IoStatus.Ok)
            {
                return tail;
            }
        }

        BeginIo();
        try
        {
            var first = alignedStart / bs;
            var last = alignedEnd / bs - 1;
            using var held = await _locks.AcquireAsync(first, last);
            if (WriteDeadline.Passed(notAfterUtcTicks))
            {
                ControllerInstruments.ExpiredWrites.Add(1);
                return IoStatus.IoError;
            }

            var lsn = new Lsn(AttachedEpoch, ++_sequence);
            var header = LogRecordHeader.ForZero(VolumeId, lsn, Guid.Empty, (ulong)alignedStart, (ulong)(alignedEnd - alignedStart));
            var (status, segment) = await AppendToMirrorsAsync(header, ReadOnlyMemory<byte>.Empty, notAfterUtcTicks);
            if (status == IoStatus.Ok)
            {
                NoteAppended(segment!, LogRecord.OverheadBytes);
            }

            for (var block = first; block <= last; block++)
            {
                cache.Invalidate(VolumeId, block);
                if (status == IoStatus.Ok)
                {
                    _dirty[block] = new DirtyEntry(lsn, segment!, Zero: true);
                }
            }

            return status;
        }
        catch (DataPathException)
        {
            // Detached underneath this I/O (a close gave up waiting for it): nothing was acknowledged.
            return IoStatus.NotAttached;
        }
        finally
        {
            EndIo();
        }
    }

    /// <summary>Overflow-safe: offset and length are non-negative and end within the volume.</summary>
    private bool InRange(long offsetBytes, long lengthBytes) =>
        offsetBytes >= 0 && lengthBytes >= 0 && offsetBytes <= SizeBytes && lengthBytes <= SizeBytes - offsetBytes;
}
