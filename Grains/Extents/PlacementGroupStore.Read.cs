using System.Diagnostics;
using Converge.Grains.Io;
using Converge.Storage;
using Crc32C = Converge.Log.Crc32C;

namespace Converge.Grains.Extents;

/// <summary>Reads that verify every block, and allocation answers that need no data I/O.</summary>
public sealed partial class PlacementGroupStore
{
    /// <summary>
    /// Reads <paramref name="count"/> blocks of one extent into <paramref name="destination"/> and reports each block's
    /// LSN and state in <paramref name="results"/>. Unwritten and zero blocks read as zeros without data I/O; every data
    /// block's CRC32C is checked, and a mismatch yields <see cref="BlockState.Corrupt"/> with zeros in its place, never
    /// the bad bytes. A range must lie within one extent.
    /// </summary>
    /// <remarks>Both spans are the caller's; nothing is retained after the call.</remarks>
    public ReadSummary ReadBlocks(long blockIndex, int count, Span<byte> destination, Span<BlockReadResult> results)
    {
        var extentIndex = LocateRange(blockIndex, count, nameof(blockIndex), out var first);
        if (destination.Length < (long)count * _blockSizeBytes)
        {
            throw new ArgumentException($"destination holds {destination.Length} bytes, {count} blocks need {(long)count * _blockSizeBytes}", nameof(destination));
        }

        if (results.Length < count)
        {
            throw new ArgumentException($"results holds {results.Length} entries, {count} needed", nameof(results));
        }

        destination = destination[..(count * _blockSizeBytes)];
        int dataBlocks = 0, thinBlocks = 0, corruptBlocks = 0;
        lock (_gate)
        {
            ThrowIfDisposed();
            var handle = AcquireLocked(extentIndex, forWrite: false);
            try
            {
                var metadata = handle.Metadata;
                if (metadata is null)
                {
                    destination.Clear();
                    results[..count].Fill(new BlockReadResult(Lsn.None, BlockState.Corrupt));
                    corruptBlocks = count;
                }
                else
                {
                    var block = 0;
                    while (block < count)
                    {
                        var state = metadata.StateOf(first + block);
                        if (state != BlockState.Data)
                        {
                            destination.Slice(block * _blockSizeBytes, _blockSizeBytes).Clear();
                            results[block] = new BlockReadResult(metadata.LsnOf(first + block), state);
                            thinBlocks++;
                            block++;
                            continue;
                        }

                        var runStart = block;
                        while (block < count && metadata.StateOf(first + block) == BlockState.Data)
                        {
                            block++;
                        }

                        var bad = ReadDataRun(handle, metadata, first + runStart, block - runStart,
                            destination.Slice(runStart * _blockSizeBytes, (block - runStart) * _blockSizeBytes), results[runStart..block]);
                        corruptBlocks += bad;
                        dataBlocks += block - runStart - bad;
                    }
                }
            }
            finally
            {
                handle.Pins--;
            }
        }

        _instruments.BlocksRead.Add(count, _groupTag);
        if (corruptBlocks > 0)
        {
            _instruments.BlocksCorrupt.Add(corruptBlocks, _groupTag);
        }

        return new ReadSummary(dataBlocks, thinBlocks, corruptBlocks);
    }

    /// <summary>
    /// Runs of blocks with the same state over a range of one extent, from metadata only (no data I/O), for NBD
    /// block status. An extent without valid metadata throws <see cref="ExtentCorruptException"/>.
    /// </summary>
    public IReadOnlyList<AllocationRun> GetAllocation(long blockIndex, int count)
    {
        var extentIndex = LocateRange(blockIndex, count, nameof(blockIndex), out var first);
        var runs = new List<AllocationRun>();
        lock (_gate)
        {
            ThrowIfDisposed();
            var handle = AcquireLocked(extentIndex, forWrite: false);
            try
            {
                var metadata = RequireMetadata(handle);
                var runStart = 0;
                for (var block = 1; block <= count; block++)
                {
                    if (block == count || metadata.StateOf(first + block) != metadata.StateOf(first + runStart))
                    {
                        runs.Add(new AllocationRun(blockIndex + runStart, block - runStart, metadata.StateOf(first + runStart)));
                        runStart = block;
                    }
                }
            }
            finally
            {
                handle.Pins--;
            }
        }

        return runs;
    }

    /// <summary>Reads contiguous data blocks in one pread and checks each; returns how many were corrupt.</summary>
    private int ReadDataRun(ExtentHandle handle, ExtentMetadata metadata, int firstBlock, int blocks, Span<byte> destination, Span<BlockReadResult> results)
    {
        Debug.Assert(Monitor.IsEntered(_gate));
        Debug.Assert(destination.Length == blocks * _blockSizeBytes);
        var file = DataFileOf(handle);
        var read = 0;
        if (file is not null)
        {
            try
            {
                read = ReadFully(file, (long)firstBlock * _blockSizeBytes, destination);
            }
            catch (StorageFaultException)
            {
                // A failed read is a bad copy of these blocks, repaired from the replica like a checksum failure.
                read = 0;
            }
        }

        // A short file reads as zeros; the checksum then decides whether zeros are what was written.
        destination[read..].Clear();
        var corrupt = 0;
        for (var b = 0; b < blocks; b++)
        {
            var block = destination.Slice(b * _blockSizeBytes, _blockSizeBytes);
            var lsn = metadata.LsnOf(firstBlock + b);
            if (Crc32C.Compute(block) == metadata.CrcOf(firstBlock + b))
            {
                results[b] = new BlockReadResult(lsn, BlockState.Data);
            }
            else
            {
                block.Clear();
                results[b] = new BlockReadResult(lsn, BlockState.Corrupt);
                corrupt++;
            }
        }

        return corrupt;
    }
}
