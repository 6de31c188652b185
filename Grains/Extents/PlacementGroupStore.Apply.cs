using System.Buffers;
using System.Diagnostics;
using Converge.Grains.Io;
using Converge.Storage;
using Crc32C = Converge.Log.Crc32C;

namespace Converge.Grains.Extents;

/// <summary>Destage: apply records by LSN and make them durable, data before metadata.</summary>
public sealed partial class PlacementGroupStore
{
    /// <summary>fdatasyncs in flight at once within one apply.</summary>
    private const int MaxConcurrentFlushes = 8;

    /// <summary>
    /// Applies every block whose LSN is higher than the stored one (an equal LSN is a duplicate and skipped), then
    /// makes the batch durable: fdatasync of the touched data files, then of their metadata. When the task completes
    /// the applied blocks survive a crash. Bad records throw <see cref="ArgumentException"/> before anything changes.
    /// </summary>
    /// <exception cref="StorageFaultException">A write or fdatasync failed; the store is fail-stopped.</exception>
    /// <exception cref="ExtentCorruptException">An extent has no valid metadata; the other extents of the batch were applied.</exception>
    /// <remarks>The payloads are the caller's and are not retained after the task completes.</remarks>
    public Task<ApplyResult> ApplyAsync(IReadOnlyList<ExtentWrite> writes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(writes);
        ValidateWrites(writes);
        ThrowIfFailed();
        ObjectDisposedException.ThrowIf(_disposed, this);
        return writes.Count == 0 ? Task.FromResult(default(ApplyResult)) : ApplySerializedAsync(writes, resetCorruptExtent: -1, cancellationToken);
    }

    private async Task<ApplyResult> ApplySerializedAsync(IReadOnlyList<ExtentWrite> writes, long resetCorruptExtent, CancellationToken cancellationToken)
    {
        await _applyGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfFailed();
            ObjectDisposedException.ThrowIf(_disposed, this);

            // fdatasync blocks the thread; keep it off the caller's scheduler (an Orleans activation's, say).
            return await Task.Run(() => ApplyBatch(writes, resetCorruptExtent), CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            _applyGate.Release();
        }
    }

    private void ValidateWrites(IReadOnlyList<ExtentWrite> writes, bool enforceCountLimit = true)
    {
        if (enforceCountLimit && writes.Count > _options.MaxRecordsPerApply)
        {
            throw new ArgumentException($"{writes.Count} records exceed the limit of {_options.MaxRecordsPerApply} per apply", nameof(writes));
        }

        for (var i = 0; i < writes.Count; i++)
        {
            var write = writes[i];
            if (write.VolumeId != VolumeId)
            {
                throw new ArgumentException($"record {i} is for volume {write.VolumeId:D}, this store holds {VolumeId:D}", nameof(writes));
            }

            if (write.Lsn.IsNone)
            {
                throw new ArgumentException($"record {i} has no LSN", nameof(writes));
            }

            _ = LocateRange(write.BlockIndex, write.BlockCount, nameof(writes), out _);
            var expectedBytes = write.Kind switch
            {
                ExtentWriteKind.Data => (long)write.BlockCount * _blockSizeBytes,
                ExtentWriteKind.Zero => 0L,
                _ => throw new ArgumentException($"record {i} has unknown kind {write.Kind}", nameof(writes)),
            };
            if (write.Payload.Length != expectedBytes)
            {
                throw new ArgumentException($"record {i} ({write.Kind}, {write.BlockCount} blocks) carries {write.Payload.Length} bytes, expected {expectedBytes}", nameof(writes));
            }
        }
    }

    private ApplyResult ApplyBatch(IReadOnlyList<ExtentWrite> writes, long resetCorruptExtent)
    {
        var count = writes.Count;
        var extentKeys = ArrayPool<long>.Shared.Rent(count);
        var order = ArrayPool<int>.Shared.Rent(count);

        // Half the cache may be pinned by one chunk, so reads always find room.
        var maxPinned = Math.Max(1, _options.MaxCachedExtents / 2);
        var chunk = ArrayPool<ExtentHandle>.Shared.Rent(maxPinned);
        var pinned = 0;
        var applied = 0;
        var skipped = 0;
        long corruptExtent = -1;
        try
        {
            for (var i = 0; i < count; i++)
            {
                extentKeys[i] = writes[i].BlockIndex / _blocksPerExtent;
                order[i] = i;
            }

            Array.Sort(extentKeys, order, 0, count);
            if (resetCorruptExtent >= 0)
            {
                // An import rebuilds an extent whose metadata was lost: start from nothing, keep the slot generations moving.
                lock (_gate)
                {
                    var handle = chunk[pinned++] = AcquireLocked(resetCorruptExtent, forWrite: true);
                    if (handle.Metadata is null)
                    {
                        handle.Metadata = new ExtentMetadata(_blocksPerExtent) { Generation = 2 };
                        handle.CorruptReason = null;
                        handle.MetaDirty = true;
                    }
                }
            }

            var next = 0;
            while (next < count)
            {
                while (next < count)
                {
                    var extentIndex = extentKeys[next];
                    if (pinned == 0 || chunk[pinned - 1].ExtentIndex != extentIndex)
                    {
                        if (pinned == maxPinned)
                        {
                            break;
                        }

                        lock (_gate)
                        {
                            chunk[pinned++] = AcquireLocked(extentIndex, forWrite: true);
                        }
                    }

                    var handle = chunk[pinned - 1];
                    if (handle.Metadata is null)
                    {
                        corruptExtent = extentIndex;
                        skipped += writes[order[next]].BlockCount;
                    }
                    else
                    {
                        ApplyRecord(handle, writes[order[next]], ref applied, ref skipped);
                    }

                    next++;
                }

                CommitChunk(chunk, pinned);
                UnpinAll(chunk, ref pinned);
            }
        }
        catch (StorageFaultException fault)
        {
            FailStop(fault);
            throw;
        }
        catch (IOException e) when (e is not ExtentCorruptException)
        {
            var fault = new StorageFaultException($"extent I/O failed in volume {VolumeId:D} group {GroupIndex}: {e.Message}");
            FailStop(fault);
            throw fault;
        }
        finally
        {
            UnpinAll(chunk, ref pinned);
            ArrayPool<ExtentHandle>.Shared.Return(chunk, clearArray: true);
            ArrayPool<long>.Shared.Return(extentKeys);
            ArrayPool<int>.Shared.Return(order);
        }

        _instruments.BlocksApplied.Add(applied, _groupTag);
        _instruments.BlocksSkipped.Add(skipped, _groupTag);
        _instruments.ApplyBatchBlocks.Record(applied + skipped, _groupTag);
        if (corruptExtent >= 0)
        {
            throw new ExtentCorruptException(
                $"extent {corruptExtent} of volume {VolumeId:D} group {GroupIndex} has no valid metadata; its records were not applied (the other {applied} blocks were)");
        }

        return new ApplyResult(applied, skipped);
    }

    /// <summary>Writes the record's newer blocks (runs in one pwrite each) and updates the in-memory metadata.</summary>
    private void ApplyRecord(ExtentHandle handle, in ExtentWrite write, ref int applied, ref int skipped)
    {
        var metadata = handle.Metadata!;
        var first = (int)(write.BlockIndex % _blocksPerExtent);
        var payload = write.Payload.Span;
        lock (_gate)
        {
            var block = 0;
            while (block < write.BlockCount)
            {
                if (write.Lsn <= metadata.LsnOf(first + block))
                {
                    skipped++;
                    block++;
                    continue;
                }

                var runStart = block;
                while (block < write.BlockCount && write.Lsn > metadata.LsnOf(first + block))
                {
                    block++;
                }

                var runBlocks = block - runStart;
                if (write.Kind == ExtentWriteKind.Data)
                {
                    var bytes = payload.Slice(runStart * _blockSizeBytes, runBlocks * _blockSizeBytes);

                    // Data goes down before metadata names it; a crash in between leaves a detectable CRC mismatch.
                    DataFileOf(handle)!.Write((long)(first + runStart) * _blockSizeBytes, bytes);
                    for (var b = 0; b < runBlocks; b++)
                    {
                        var crc = Crc32C.Compute(bytes.Slice(b * _blockSizeBytes, _blockSizeBytes));
                        metadata.Set(first + runStart + b, write.Lsn, BlockState.Data, crc);
                    }

                    handle.DataDirty = true;
                    _instruments.BytesWritten.Add(bytes.Length, _groupTag);
                }
                else
                {
                    // A tombstone needs no data I/O: the state alone makes the blocks read as zeros.
                    for (var b = 0; b < runBlocks; b++)
                    {
                        metadata.Set(first + runStart + b, write.Lsn, BlockState.Zero, 0);
                    }
                }

                handle.MetaDirty = true;
                applied += runBlocks;
            }
        }
    }

    /// <summary>Durability point of a chunk: data files, then the directory (new files), then metadata slots.</summary>
    private void CommitChunk(ExtentHandle[] chunk, int pinned)
    {
        var anyCreated = false;
        for (var i = 0; i < pinned; i++)
        {
            anyCreated |= chunk[i].Created;
        }

        FlushAll(chunk, pinned, data: true);

        if (anyCreated)
        {
            _fileSystem.SyncDirectory(Directory);
            for (var i = 0; i < pinned; i++)
            {
                chunk[i].Created = false;
            }
        }

        var slot = ArrayPool<byte>.Shared.Rent(_slotSizeBytes);
        try
        {
            for (var i = 0; i < pinned; i++)
            {
                var handle = chunk[i];
                if (!handle.MetaDirty)
                {
                    continue;
                }

                ulong generation;
                lock (_gate)
                {
                    var metadata = handle.Metadata!;
                    metadata.Generation++;
                    generation = metadata.Generation;
                    metadata.WriteSlot(slot.AsSpan(0, _slotSizeBytes), IdentityOf(handle.ExtentIndex));
                }

                handle.MetaFile!.Write((long)(generation % 2) * _slotSizeBytes, slot.AsSpan(0, _slotSizeBytes));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(slot);
        }

        FlushAll(chunk, pinned, data: false);
    }

    /// <summary>
    /// fdatasyncs the dirty data (or metadata) files of a chunk, several at once: the file system folds concurrent
    /// syncs into one journal commit, so a batch spread over many extents costs a few commits instead of one per file.
    /// </summary>
    private void FlushAll(ExtentHandle[] chunk, int pinned, bool data)
    {
        var dirty = 0;
        var last = -1;
        for (var i = 0; i < pinned; i++)
        {
            if (data ? chunk[i].DataDirty : chunk[i].MetaDirty)
            {
                dirty++;
                last = i;
            }
        }

        if (dirty == 1)
        {
            FlushOne(chunk[last], data);
            return;
        }

        if (dirty > 1)
        {
            try
            {
                Parallel.For(0, pinned, new ParallelOptions { MaxDegreeOfParallelism = MaxConcurrentFlushes }, i =>
                {
                    if (data ? chunk[i].DataDirty : chunk[i].MetaDirty)
                    {
                        FlushOne(chunk[i], data);
                    }
                });
            }
            catch (AggregateException e) when (e.InnerExceptions.FirstOrDefault(x => x is StorageFaultException) is StorageFaultException fault)
            {
                throw fault;
            }
        }
    }

    private void FlushOne(ExtentHandle handle, bool data)
    {
        if (data)
        {
            FlushTimed(handle.DataFile!, "data");
            handle.DataDirty = false;
        }
        else
        {
            FlushTimed(handle.MetaFile!, "meta");
            handle.MetaDirty = false;
        }
    }

    private void UnpinAll(ExtentHandle[] chunk, ref int pinned)
    {
        if (pinned == 0)
        {
            return;
        }

        lock (_gate)
        {
            for (var i = 0; i < pinned; i++)
            {
                Debug.Assert(chunk[i].Pins > 0);
                chunk[i].Pins--;
                chunk[i] = null!;
            }

            pinned = 0;
            EvictLocked();
        }
    }
}
