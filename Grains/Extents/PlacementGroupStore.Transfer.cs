using System.Buffers;
using System.Buffers.Binary;
using Converge.Storage;
using Crc32C = Converge.Log.Crc32C;

namespace Converge.Grains.Extents;

/// <summary>
/// Whole-extent transfer for re-replication and repair. The export stream (docs/extent-format.md) carries every
/// written block with its LSN and CRC; import applies it through the same LSN rule as destage, so it is idempotent
/// and may race with destage safely. Blocks that are corrupt at the source are left out and counted.
/// </summary>
public sealed partial class PlacementGroupStore
{
    public static ReadOnlySpan<byte> ExportMagic => "CVGEXTX1"u8;

    public const int ExportHeaderSizeBytes = 64;
    public const int ExportRecordHeaderSizeBytes = 32;
    public const byte ExportRecordData = 1;
    public const byte ExportRecordZero = 2;
    public const byte ExportRecordEnd = 0xEE;

    private const int TransferChunkBlocks = 64;

    /// <summary>Streams one extent to <paramref name="destination"/>; returns blocks sent and blocks skipped as corrupt here.</summary>
    public Task<TransferResult> ExportExtentAsync(long extentIndex, Stream destination, CancellationToken cancellationToken = default) =>
        ExportExtentAsync(extentIndex, destination, 0, _blocksPerExtent, cancellationToken);

    /// <summary>
    /// Streams blocks [<paramref name="firstBlock"/>, +<paramref name="blockCount"/>) of one extent (numbered within it) as
    /// a complete export stream, so an extent can be copied a range at a time with bounded memory.
    /// </summary>
    public async Task<TransferResult> ExportExtentAsync(long extentIndex, Stream destination, int firstBlock, int blockCount, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ValidateExtent(extentIndex);
        if (firstBlock < 0 || blockCount < 1 || firstBlock > _blocksPerExtent - blockCount)
        {
            throw new ArgumentOutOfRangeException(nameof(blockCount), $"blocks {firstBlock}+{blockCount} are not within an extent of {_blocksPerExtent} blocks");
        }

        var header = new byte[ExportHeaderSizeBytes];
        WriteExportHeader(header, extentIndex);
        await destination.WriteAsync(header, cancellationToken).ConfigureAwait(false);

        var sent = 0;
        var corrupt = 0;
        await ForEachChunkAsync(extentIndex, firstBlock, blockCount, async (chunk, results, chunkFirstBlock, blocks) =>
        {
            var record = ArrayPool<byte>.Shared.Rent(ExportRecordHeaderSizeBytes);
            try
            {
                for (var b = 0; b < blocks; b++)
                {
                    var state = results[b].State;
                    if (state == BlockState.Unwritten)
                    {
                        continue;
                    }

                    if (state == BlockState.Corrupt)
                    {
                        corrupt++;
                        continue;
                    }

                    var payload = state == BlockState.Data ? chunk.AsMemory(b * _blockSizeBytes, _blockSizeBytes) : ReadOnlyMemory<byte>.Empty;
                    WriteRecordHeader(record, state == BlockState.Data ? ExportRecordData : ExportRecordZero, chunkFirstBlock + b, results[b].Lsn,
                        payload.IsEmpty ? 0 : Crc32C.Compute(payload.Span));
                    await destination.WriteAsync(record.AsMemory(0, ExportRecordHeaderSizeBytes), cancellationToken).ConfigureAwait(false);
                    if (!payload.IsEmpty)
                    {
                        await destination.WriteAsync(payload, cancellationToken).ConfigureAwait(false);
                    }

                    sent++;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(record);
            }
        }, cancellationToken).ConfigureAwait(false);

        WriteRecordHeader(header, ExportRecordEnd, sent, Lsn.None, 0, omittedCorruptBlocks: (uint)corrupt);
        await destination.WriteAsync(header.AsMemory(0, ExportRecordHeaderSizeBytes), cancellationToken).ConfigureAwait(false);
        return new TransferResult(sent, 0, corrupt);
    }

    /// <summary>
    /// Applies an exported extent by LSN. The stream is checked record by record (any bad checksum, foreign volume or
    /// truncation throws <see cref="InvalidDataException"/>); records before a bad one may already be applied, which is
    /// harmless because each is verified and LSN-ordered. An extent whose metadata was lost is rebuilt from the stream
    /// in one durable batch, and only when the source left no corrupt block out; otherwise nothing changes.
    /// </summary>
    public async Task<TransferResult> ImportExtentAsync(Stream source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ThrowIfFailed();
        try
        {
            return await ImportCoreAsync(source, cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("extent export is truncated", e);
        }
    }

    private async Task<TransferResult> ImportCoreAsync(Stream source, CancellationToken cancellationToken)
    {
        var header = new byte[ExportHeaderSizeBytes];
        await source.ReadExactlyAsync(header, cancellationToken).ConfigureAwait(false);
        var extentIndex = ReadExportHeader(header);

        // Rebuilding an extent whose metadata is lost replaces everything it had: stage the whole stream and apply it
        // as one durable batch, and only from a source that left nothing out, or lost blocks would read as zeros.
        var rebuild = IsMetadataLost(extentIndex);
        var chunkBlocks = rebuild ? _blocksPerExtent : TransferChunkBlocks;
        var buffer = ArrayPool<byte>.Shared.Rent(chunkBlocks * _blockSizeBytes);
        var writes = new List<ExtentWrite>(chunkBlocks);
        var applied = 0;
        var skipped = 0;
        var records = 0;
        try
        {
            var used = 0;
            while (true)
            {
                await source.ReadExactlyAsync(header.AsMemory(0, ExportRecordHeaderSizeBytes), cancellationToken).ConfigureAwait(false);
                var (kind, block, lsn, payloadCrc) = ReadRecordHeader(header, records);
                if (kind == ExportRecordEnd)
                {
                    if (block != records)
                    {
                        throw new InvalidDataException($"export of extent {extentIndex} ends after {records} records but names {block}");
                    }

                    var omitted = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(12));
                    if (rebuild && omitted > 0)
                    {
                        throw new InvalidDataException(
                            $"extent {extentIndex} lost its metadata here and the source left out {omitted} corrupt blocks: it cannot be rebuilt from this source alone");
                    }

                    break;
                }

                if (writes.Count == chunkBlocks)
                {
                    throw new InvalidDataException($"export of extent {extentIndex} has more records than the extent has blocks");
                }

                var blockIndex = extentIndex * _blocksPerExtent + block;
                if (kind == ExportRecordData)
                {
                    var payload = buffer.AsMemory(used, _blockSizeBytes);
                    await source.ReadExactlyAsync(payload, cancellationToken).ConfigureAwait(false);
                    if (Crc32C.Compute(payload.Span) != payloadCrc)
                    {
                        throw new InvalidDataException($"export of extent {extentIndex}: block {block} fails its checksum");
                    }

                    writes.Add(new ExtentWrite(VolumeId, blockIndex, 1, lsn, ExtentWriteKind.Data, payload));
                    used += _blockSizeBytes;
                }
                else
                {
                    writes.Add(ExtentWrite.Zero(VolumeId, blockIndex, 1, lsn));
                }

                records++;
                if (!rebuild && writes.Count == chunkBlocks)
                {
                    (applied, skipped) = await FlushImportAsync(writes, extentIndex, reset: false, applied, skipped, cancellationToken).ConfigureAwait(false);
                    used = 0;
                }
            }

            if (writes.Count > 0 || rebuild)
            {
                (applied, skipped) = await FlushImportAsync(writes, extentIndex, rebuild, applied, skipped, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return new TransferResult(applied, skipped, 0);
    }

    /// <summary>The extents of this group that have metadata files here, ascending.</summary>
    public List<long> ListExtents()
    {
        ThrowIfDisposed();
        var extents = new List<long>();
        foreach (var path in _fileSystem.List(Directory, "*.meta"))
        {
            if (TryParseExtentIndex(Path.GetFileName(path), out var extentIndex) && extentIndex % _options.GroupCount == GroupIndex)
            {
                extents.Add(extentIndex);
            }
        }

        extents.Sort();
        return extents;
    }

    private bool IsMetadataLost(long extentIndex)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            var handle = AcquireLocked(extentIndex, forWrite: false);
            handle.Pins--;
            return handle.Metadata is null;
        }
    }

    /// <summary>Copies one extent into another store (same volume, another replica) without serializing it.</summary>
    public async Task<TransferResult> CopyExtentToAsync(long extentIndex, PlacementGroupStore target, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        ValidateExtent(extentIndex);
        if (target.VolumeId != VolumeId || target.GroupIndex != GroupIndex || target.BlockSizeBytes != _blockSizeBytes || target.BlocksPerExtent != _blocksPerExtent)
        {
            throw new ArgumentException("the target holds another volume, group or geometry", nameof(target));
        }

        var applied = 0;
        var skipped = 0;
        var corrupt = 0;
        var writes = new List<ExtentWrite>(TransferChunkBlocks);
        await ForEachChunkAsync(extentIndex, 0, _blocksPerExtent, async (chunk, results, firstBlock, blocks) =>
        {
            writes.Clear();
            for (var b = 0; b < blocks; b++)
            {
                var blockIndex = extentIndex * _blocksPerExtent + firstBlock + b;
                switch (results[b].State)
                {
                    case BlockState.Data:
                        writes.Add(new ExtentWrite(VolumeId, blockIndex, 1, results[b].Lsn, ExtentWriteKind.Data, chunk.AsMemory(b * _blockSizeBytes, _blockSizeBytes)));
                        break;
                    case BlockState.Zero:
                        writes.Add(ExtentWrite.Zero(VolumeId, blockIndex, 1, results[b].Lsn));
                        break;
                    case BlockState.Corrupt:
                        corrupt++;
                        break;
                }
            }

            if (writes.Count > 0)
            {
                var result = await target.ApplyAsync(writes, cancellationToken).ConfigureAwait(false);
                applied += result.BlocksApplied;
                skipped += result.BlocksSkipped;
            }
        }, cancellationToken).ConfigureAwait(false);
        return new TransferResult(applied, skipped, corrupt);
    }

    private async Task<(int Applied, int Skipped)> FlushImportAsync(List<ExtentWrite> writes, long extentIndex, bool reset, int applied, int skipped, CancellationToken cancellationToken)
    {
        ValidateWrites(writes, enforceCountLimit: false);
        if (writes.Count > 0 || reset)
        {
            var result = await ApplySerializedAsync(writes, reset ? extentIndex : -1, cancellationToken).ConfigureAwait(false);
            applied += result.BlocksApplied;
            skipped += result.BlocksSkipped;
        }

        writes.Clear();
        return (applied, skipped);
    }

    /// <summary>Reads an extent a chunk at a time (verified, under the lock) and hands each chunk to <paramref name="consume"/> outside it.</summary>
    private async Task ForEachChunkAsync(long extentIndex, int rangeFirstBlock, int rangeBlockCount, Func<byte[], BlockReadResult[], int, int, Task> consume,
        CancellationToken cancellationToken)
    {
        var chunk = ArrayPool<byte>.Shared.Rent(TransferChunkBlocks * _blockSizeBytes);
        var results = ArrayPool<BlockReadResult>.Shared.Rent(TransferChunkBlocks);
        try
        {
            var rangeEnd = rangeFirstBlock + rangeBlockCount;
            for (var firstBlock = rangeFirstBlock; firstBlock < rangeEnd; firstBlock += TransferChunkBlocks)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var blocks = Math.Min(TransferChunkBlocks, rangeEnd - firstBlock);
                ReadBlocks(extentIndex * _blocksPerExtent + firstBlock, blocks, chunk.AsSpan(0, blocks * _blockSizeBytes), results.AsSpan(0, blocks));
                await consume(chunk, results, firstBlock, blocks).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
            ArrayPool<BlockReadResult>.Shared.Return(results);
        }
    }

    private void WriteExportHeader(Span<byte> header, long extentIndex)
    {
        header.Clear();
        ExportMagic.CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header[8..], 1);
        BinaryPrimitives.WriteInt32LittleEndian(header[12..], _blockSizeBytes);
        BinaryPrimitives.WriteInt32LittleEndian(header[16..], _blocksPerExtent);
        VolumeId.TryWriteBytes(header[24..40], bigEndian: true, out _);
        BinaryPrimitives.WriteUInt64LittleEndian(header[40..], ExtentKey.LiveSnapshotId);
        BinaryPrimitives.WriteInt64LittleEndian(header[48..], extentIndex);
        BinaryPrimitives.WriteUInt32LittleEndian(header[60..], Crc32C.Compute(header[..60]));
    }

    private long ReadExportHeader(ReadOnlySpan<byte> header)
    {
        if (!header[..8].SequenceEqual(ExportMagic) || BinaryPrimitives.ReadUInt32LittleEndian(header[60..]) != Crc32C.Compute(header[..60]))
        {
            throw new InvalidDataException("not an extent export, or its header fails its checksum");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(header[8..]);
        var blockSize = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
        var blocks = BinaryPrimitives.ReadInt32LittleEndian(header[16..]);
        var volumeId = new Guid(header[24..40], bigEndian: true);
        var snapshotId = BinaryPrimitives.ReadUInt64LittleEndian(header[40..]);
        var extentIndex = BinaryPrimitives.ReadInt64LittleEndian(header[48..]);
        if (version != 1 || blockSize != _blockSizeBytes || blocks != _blocksPerExtent || volumeId != VolumeId || snapshotId != ExtentKey.LiveSnapshotId)
        {
            throw new InvalidDataException($"export of {volumeId:D}/s{snapshotId}/e{extentIndex} (version {version}, {blocks} blocks of {blockSize} bytes) does not fit volume {VolumeId:D} here");
        }

        if (extentIndex < 0 || extentIndex % _options.GroupCount != GroupIndex)
        {
            throw new InvalidDataException($"export of extent {extentIndex} is not in placement group {GroupIndex}");
        }

        return extentIndex;
    }

    private static void WriteRecordHeader(Span<byte> record, byte kind, int block, Lsn lsn, uint payloadCrc, uint omittedCorruptBlocks = 0)
    {
        record[..ExportRecordHeaderSizeBytes].Clear();
        record[0] = kind;
        BinaryPrimitives.WriteInt32LittleEndian(record[4..], block);
        BinaryPrimitives.WriteUInt32LittleEndian(record[8..], lsn.Epoch);
        BinaryPrimitives.WriteUInt32LittleEndian(record[12..], omittedCorruptBlocks);
        BinaryPrimitives.WriteUInt64LittleEndian(record[16..], lsn.Sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(record[24..], payloadCrc);
        BinaryPrimitives.WriteUInt32LittleEndian(record[28..], Crc32C.Compute(record[..28]));
    }

    private (byte Kind, int Block, Lsn Lsn, uint PayloadCrc) ReadRecordHeader(ReadOnlySpan<byte> record, int ordinal)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(record[28..]) != Crc32C.Compute(record[..28]))
        {
            throw new InvalidDataException($"export record {ordinal} fails its header checksum");
        }

        var kind = record[0];
        var block = BinaryPrimitives.ReadInt32LittleEndian(record[4..]);
        var lsn = new Lsn(BinaryPrimitives.ReadUInt32LittleEndian(record[8..]), BinaryPrimitives.ReadUInt64LittleEndian(record[16..]));
        if (kind is not (ExportRecordData or ExportRecordZero or ExportRecordEnd)
            || (kind != ExportRecordEnd && (block < 0 || block >= _blocksPerExtent || lsn.IsNone)))
        {
            throw new InvalidDataException($"export record {ordinal}: kind {kind}, block {block}, LSN {lsn} is not valid here");
        }

        return (kind, block, lsn, BinaryPrimitives.ReadUInt32LittleEndian(record[24..]));
    }
}
