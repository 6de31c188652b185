using System.Buffers;
using System.Diagnostics;
using Converge.Grains.Io;
using Converge.Storage;

namespace Converge.Grains.Extents;

/// <summary>The bounded cache of open extents: metadata plus the two file handles, evicted least recently used.</summary>
public sealed partial class PlacementGroupStore
{
    private readonly Dictionary<long, ExtentHandle> _handles = [];
    private readonly LinkedList<ExtentHandle> _lru = new();

    private string MetaPath(long extentIndex) => Path.Combine(Directory, ExtentFileStem(ExtentKey.LiveSnapshotId, extentIndex) + ".meta");

    private string DataPath(long extentIndex) => Path.Combine(Directory, ExtentFileStem(ExtentKey.LiveSnapshotId, extentIndex) + ".data");

    private SlotIdentity IdentityOf(long extentIndex) => new(VolumeId, ExtentKey.LiveSnapshotId, extentIndex, _blockSizeBytes);

    /// <summary>
    /// Returns the extent's handle pinned (the caller decrements <see cref="ExtentHandle.Pins"/>), loading its metadata
    /// when not cached. With <paramref name="forWrite"/> the extent's files are created when missing. Caller holds _gate.
    /// </summary>
    private ExtentHandle AcquireLocked(long extentIndex, bool forWrite)
    {
        Debug.Assert(Monitor.IsEntered(_gate));
        if (_handles.TryGetValue(extentIndex, out var handle))
        {
            _lru.Remove(handle.Node);
            _lru.AddFirst(handle.Node);
        }
        else
        {
            handle = LoadHandle(extentIndex);
            _handles.Add(extentIndex, handle);
            _lru.AddFirst(handle.Node);
        }

        handle.Pins++;
        try
        {
            if (forWrite && !handle.FilesExist)
            {
                CreateFiles(handle);
            }
        }
        catch
        {
            handle.Pins--;
            throw;
        }

        EvictLocked();
        return handle;
    }

    private ExtentHandle LoadHandle(long extentIndex)
    {
        var handle = new ExtentHandle(extentIndex);
        var metaPath = MetaPath(extentIndex);
        if (!_fileSystem.Exists(metaPath))
        {
            // A data file without metadata is left from a batch that never became durable: its contents are not trusted.
            handle.Metadata = new ExtentMetadata(_blocksPerExtent);
            return handle;
        }

        handle.MetaFile = _fileSystem.Open(metaPath, create: false);
        handle.FilesExist = true;
        try
        {
            var load = ReadMetadata(handle.MetaFile, extentIndex);
            handle.Metadata = load.Metadata;
            handle.CorruptReason = load.Problem;
            handle.SuspectRollback = load.SuspectRollback;
        }
        catch
        {
            handle.Close();
            throw;
        }

        return handle;
    }

    /// <summary>Reads both slots and picks the valid one with the highest generation.</summary>
    private MetadataLoad ReadMetadata(IStorageFile metaFile, long extentIndex)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(_slotSizeBytes);
        try
        {
            var identity = IdentityOf(extentIndex);
            Span<SlotStatus> statuses = stackalloc SlotStatus[2];
            var candidates = new ExtentMetadata?[2];
            var problems = new string?[2];
            for (var slot = 0; slot < 2; slot++)
            {
                var span = buffer.AsSpan(0, _slotSizeBytes);
                var read = ReadFully(metaFile, (long)slot * _slotSizeBytes, span);
                statuses[slot] = ExtentMetadata.TryReadSlot(span[..read], identity, _blocksPerExtent, out candidates[slot], out problems[slot]);
            }

            var best = -1;
            for (var slot = 0; slot < 2; slot++)
            {
                if (statuses[slot] == SlotStatus.Valid && (best < 0 || candidates[slot]!.Generation > candidates[best]!.Generation))
                {
                    best = slot;
                }
            }

            var other = best < 0 ? -1 : 1 - best;
            if (best < 0)
            {
                if (statuses[0] == SlotStatus.Invalid && statuses[1] == SlotStatus.Invalid)
                {
                    var problem = $"slot 0: {problems[0]}; slot 1: {problems[1]}";
                    Log.MetadataCorrupt(_logger, metaFile.Path, problem);
                    return new MetadataLoad(null, problem, SuspectRollback: true);
                }

                // Only the first generation was ever being written, and it tore: the extent held nothing durable yet.
                var torn = statuses[0] == SlotStatus.Invalid ? 0 : statuses[1] == SlotStatus.Invalid ? 1 : -1;
                if (torn >= 0)
                {
                    Log.SlotFallback(_logger, metaFile.Path, torn, problems[torn]!, 0);
                }

                return new MetadataLoad(new ExtentMetadata(_blocksPerExtent), null, SuspectRollback: torn >= 0);
            }

            if (statuses[other] == SlotStatus.Invalid)
            {
                // Either the next generation tore mid-write (its apply never completed), or the older slot rotted.
                Log.SlotFallback(_logger, metaFile.Path, other, problems[other]!, candidates[best]!.Generation);
                return new MetadataLoad(candidates[best], null, SuspectRollback: true);
            }

            return new MetadataLoad(candidates[best], null, SuspectRollback: false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void CreateFiles(ExtentHandle handle)
    {
        Debug.Assert(handle.Metadata is not null && handle.Metadata.Generation == 0);
        handle.MetaFile ??= _fileSystem.Open(MetaPath(handle.ExtentIndex), create: true);
        handle.DataFile ??= _fileSystem.Open(DataPath(handle.ExtentIndex), create: true);

        // Sparse: the full length with no blocks allocated; only written blocks take space.
        if (handle.DataFile.LengthBytes != (long)_blocksPerExtent * _blockSizeBytes)
        {
            handle.DataFile.SetLength((long)_blocksPerExtent * _blockSizeBytes);
        }

        handle.FilesExist = true;
        handle.Created = true;
    }

    private IStorageFile? DataFileOf(ExtentHandle handle)
    {
        if (handle.DataFile is null && handle.FilesExist)
        {
            var path = DataPath(handle.ExtentIndex);
            if (_fileSystem.Exists(path))
            {
                handle.DataFile = _fileSystem.Open(path, create: false);
            }
        }

        return handle.DataFile;
    }

    private void EvictLocked()
    {
        var node = _lru.Last;
        while (_handles.Count > _options.MaxCachedExtents && node is not null)
        {
            var previous = node.Previous;
            var victim = node.Value;
            if (victim.Pins == 0)
            {
                Debug.Assert(IsFailed || (!victim.DataDirty && !victim.MetaDirty), "an unpinned extent is committed unless the store failed");
                _lru.Remove(node);
                _handles.Remove(victim.ExtentIndex);
                victim.Close();
            }

            node = previous;
        }
    }

    private void CloseAllLocked()
    {
        foreach (var handle in _handles.Values)
        {
            handle.Close();
        }

        _handles.Clear();
        _lru.Clear();
    }

    private static int ReadFully(IStorageFile file, long offsetBytes, Span<byte> buffer)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var read = file.Read(offsetBytes + total, buffer[total..]);
            if (read <= 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }

    private readonly record struct MetadataLoad(ExtentMetadata? Metadata, string? Problem, bool SuspectRollback);

    private sealed class ExtentHandle
    {
        public ExtentHandle(long extentIndex)
        {
            ExtentIndex = extentIndex;
            Node = new LinkedListNode<ExtentHandle>(this);
        }

        public long ExtentIndex { get; }

        public LinkedListNode<ExtentHandle> Node { get; }

        /// <summary>Null when no metadata slot is valid: the extent is corrupt until imported.</summary>
        public ExtentMetadata? Metadata { get; set; }

        public string? CorruptReason { get; set; }

        /// <summary>The newest slot was unusable and an older generation is served: the extent may lag its replica.</summary>
        public bool SuspectRollback { get; set; }

        public IStorageFile? MetaFile { get; set; }

        public IStorageFile? DataFile { get; set; }

        public bool FilesExist { get; set; }

        /// <summary>Files were created in this batch: the directory needs an fsync.</summary>
        public bool Created { get; set; }

        public bool DataDirty { get; set; }

        public bool MetaDirty { get; set; }

        public int Pins { get; set; }

        public void Close()
        {
            MetaFile?.Dispose();
            DataFile?.Dispose();
            MetaFile = null;
            DataFile = null;
        }
    }
}
