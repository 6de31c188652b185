using System.Buffers;
using System.Globalization;
using Converge.Grains.Io;

namespace Converge.Grains.Extents;

/// <summary>What <see cref="PlacementGroupStore.Verify"/> found.</summary>
/// <param name="CorruptExtents">Extents with no valid metadata slot: import them from a replica.</param>
/// <param name="SuspectExtents">Extents served from an older slot because the newest was unusable (a torn write, or rot): reconcile with the replica.</param>
/// <param name="CorruptBlocks">Volume block indexes whose data failed its checksum (only with data verification), at most <see cref="PlacementGroupStore.MaxReportedBlocks"/>.</param>
public sealed record VerifyReport(int ExtentsChecked, long BlocksChecked, IReadOnlyList<long> CorruptExtents, IReadOnlyList<long> SuspectExtents,
    IReadOnlyList<long> CorruptBlocks, long CorruptBlockCount)
{
    public bool IsClean => CorruptExtents.Count == 0 && SuspectExtents.Count == 0 && CorruptBlockCount == 0;
}

/// <summary>Start-up verification and volume removal.</summary>
public sealed partial class PlacementGroupStore
{
    public const int MaxReportedBlocks = 4096;

    /// <summary>
    /// Checks every extent's metadata slots and, with <paramref name="includeData"/>, every data block's CRC32C.
    /// Meant for start-up; it runs between applies and reads at most one extent's blocks at a time.
    /// </summary>
    public VerifyReport Verify(bool includeData)
    {
        var corruptExtents = new List<long>();
        var suspectExtents = new List<long>();
        var corruptBlocks = new List<long>();
        long corruptBlockCount = 0;
        long blocksChecked = 0;
        var extents = 0;
        var chunk = ArrayPool<byte>.Shared.Rent(64 * _blockSizeBytes);
        var results = ArrayPool<BlockReadResult>.Shared.Rent(64);
        EnterApplyGate("verify");
        try
        {
            ThrowIfDisposed();
            foreach (var path in _fileSystem.List(Directory, "*.meta"))
            {
                if (!TryParseExtentIndex(Path.GetFileName(path), out var extentIndex) || extentIndex % _options.GroupCount != GroupIndex)
                {
                    continue;
                }

                extents++;
                ExtentMetadata? metadata;
                lock (_gate)
                {
                    // Load afresh rather than trusting a cached copy: verification is about what is on disk.
                    if (_handles.TryGetValue(extentIndex, out var cached) && cached.Pins == 0)
                    {
                        _lru.Remove(cached.Node);
                        _handles.Remove(extentIndex);
                        cached.Close();
                    }

                    var handle = AcquireLocked(extentIndex, forWrite: false);
                    handle.Pins--;
                    metadata = handle.Metadata;
                    if (metadata is null)
                    {
                        corruptExtents.Add(extentIndex);
                        continue;
                    }

                    if (handle.SuspectRollback)
                    {
                        suspectExtents.Add(extentIndex);
                    }
                }

                if (!includeData || metadata.DataBlocks == 0)
                {
                    continue;
                }

                for (var first = 0; first < _blocksPerExtent; first += 64)
                {
                    var blocks = Math.Min(64, _blocksPerExtent - first);
                    var summary = ReadBlocks(extentIndex * _blocksPerExtent + first, blocks, chunk.AsSpan(0, blocks * _blockSizeBytes), results.AsSpan(0, blocks));
                    blocksChecked += summary.DataBlocks + summary.CorruptBlocks;
                    if (summary.CorruptBlocks == 0)
                    {
                        continue;
                    }

                    corruptBlockCount += summary.CorruptBlocks;
                    for (var b = 0; b < blocks && corruptBlocks.Count < MaxReportedBlocks; b++)
                    {
                        if (results[b].State == BlockState.Corrupt)
                        {
                            corruptBlocks.Add(extentIndex * _blocksPerExtent + first + b);
                        }
                    }
                }
            }
        }
        finally
        {
            _applyGate.Release();
            ArrayPool<byte>.Shared.Return(chunk);
            ArrayPool<BlockReadResult>.Shared.Return(results);
        }

        return new VerifyReport(extents, blocksChecked, corruptExtents, suspectExtents, corruptBlocks, corruptBlockCount);
    }

    /// <summary>
    /// Removes this group's replica of the volume: every extent file, then the group directory (and the volume
    /// directory once empty), each removal made durable with a directory fsync. The store is closed afterwards.
    /// </summary>
    public void Delete(Guid volumeId)
    {
        if (volumeId != VolumeId)
        {
            throw new ArgumentException($"this store holds volume {VolumeId:D}, not {volumeId:D}", nameof(volumeId));
        }

        EnterApplyGate("delete");
        try
        {
            lock (_gate)
            {
                ThrowIfDisposed();
                _disposed = true;
                CloseAllLocked();
            }

            foreach (var path in _fileSystem.List(Directory, "*"))
            {
                _fileSystem.Delete(path);
            }

            _fileSystem.SyncDirectory(Directory);
            var volumeDirectory = Path.GetDirectoryName(Directory)!;
            System.IO.Directory.Delete(Directory);
            _fileSystem.SyncDirectory(volumeDirectory);
            if (!System.IO.Directory.EnumerateFileSystemEntries(volumeDirectory).Any())
            {
                System.IO.Directory.Delete(volumeDirectory);
                _fileSystem.SyncDirectory(Path.GetDirectoryName(volumeDirectory)!);
            }
        }
        finally
        {
            _applyGate.Release();
        }
    }

    private static bool TryParseExtentIndex(string fileName, out long extentIndex)
    {
        extentIndex = -1;
        const string prefix = "s0-e";
        return fileName.StartsWith(prefix, StringComparison.Ordinal) && fileName.EndsWith(".meta", StringComparison.Ordinal)
            && long.TryParse(fileName.AsSpan(prefix.Length, fileName.Length - prefix.Length - ".meta".Length), NumberStyles.None, CultureInfo.InvariantCulture, out extentIndex);
    }
}
