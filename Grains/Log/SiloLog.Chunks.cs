using Converge.Grains.Io;

namespace Converge.Grains.Log;

public sealed partial class SiloLog
{
    private const int ZeroBlockBytes = 256 * 1024;
    private static readonly byte[] ZeroBlock = new byte[ZeroBlockBytes];

    private readonly Lock _spareLock = new();
    private readonly Queue<string> _spares = new();
    private Task _reclaim = Task.CompletedTask;
    private bool _preparingSpare;

    /// <summary>A ready spare chunk: zero-filled, or a recycled chunk holding frames of an earlier use (docs/log-format.md).</summary>
    private const string SpareExtension = ".spare";

    /// <summary>
    /// The chunk after the current one: an existing file of that number, a spare (a recycled chunk, or a zero-filled file
    /// prepared in the background), or, when no spare is ready, a new zero-filled file made here. Taking the last spare
    /// starts the preparation of the next one, so the writer does not stop to zero-fill 64 MiB in a growing log.
    /// </summary>
    private Chunk NextChunk()
    {
        var number = _current.Number + 1;
        var path = ChunkPath(number);
        lock (_lock)
        {
            if (_chunks.TryGetValue(number, out var existing))
            {
                return existing;
            }
        }

        string? spare = null;
        lock (_spareLock)
        {
            _spares.TryDequeue(out spare);
        }

        if (spare is not null)
        {
            _fileSystem.Rename(spare, path);
        }
        else
        {
            PrepareZeroedFile(path + ".tmp");
            _fileSystem.Rename(path + ".tmp", path);
        }

        _fileSystem.SyncDirectory(_directory);
        var chunk = new Chunk(number, _fileSystem.Open(path, create: false));
        lock (_lock)
        {
            _chunks.Add(number, chunk);
        }

        PrepareSpareAhead();
        return chunk;
    }

    /// <summary>Starts zero-filling a new spare in the background when none is ready or being made.</summary>
    private void PrepareSpareAhead()
    {
        lock (_spareLock)
        {
            if (_spares.Count > 0 || _preparingSpare)
            {
                return;
            }

            _preparingSpare = true;
            _reclaim = _reclaim.ContinueWith(_ => PrepareSpare(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
    }

    private void PrepareSpare()
    {
        try
        {
            lock (_lock)
            {
                if (_stopping || _fault is not null)
                {
                    return;
                }
            }

            var name = Path.Combine(_directory, $"spare-{Guid.NewGuid():N}");
            PrepareZeroedFile(name + ".tmp");
            _fileSystem.Rename(name + ".tmp", name + SpareExtension);
            _fileSystem.SyncDirectory(_directory);
            lock (_spareLock)
            {
                _spares.Enqueue(name + SpareExtension);
            }
        }
        catch (Exception e) when (e is IOException or StorageFaultException or UnauthorizedAccessException)
        {
            // Not fatal: the writer zero-fills a new chunk itself when it finds no spare.
            LogSparePreparationFailed(_logger, e.Message);
        }
        finally
        {
            lock (_spareLock)
            {
                _preparingSpare = false;
            }
        }
    }

    /// <summary>Creates or overwrites <paramref name="path"/> with zeros for a whole chunk and makes them durable.</summary>
    private void PrepareZeroedFile(string path)
    {
        // Written zeros, not a sparse ftruncate: an fdatasync'd overwrite of allocated blocks costs about half a growing append.
        using var file = _fileSystem.Open(path, create: true);
        for (long offset = 0; offset < _options.ChunkSizeBytes; offset += ZeroBlockBytes)
        {
            var length = (int)Math.Min(ZeroBlockBytes, _options.ChunkSizeBytes - offset);
            file.Write(offset, ZeroBlock.AsSpan(0, length));
        }

        if (file.LengthBytes != _options.ChunkSizeBytes)
        {
            file.SetLength(_options.ChunkSizeBytes);
        }

        file.FlushData();
    }

    /// <summary>
    /// Declares a sealed segment destaged: its records stop counting against the NVRAM budget, and chunks left with no
    /// live records (other than the current one) are recycled in the background. Idempotent.
    /// </summary>
    public MarkDestagedStatus MarkDestaged(Guid segmentId)
    {
        List<Chunk>? reclaimable = null;
        lock (_lock)
        {
            if (!_segments.TryGetValue(segmentId, out var segment))
            {
                return MarkDestagedStatus.UnknownSegment;
            }

            if (!segment.SealCommitted)
            {
                // Sealed but not yet committed: records admitted before the seal may not be indexed yet.
                return MarkDestagedStatus.NotSealed;
            }

            if (segment.Destaged)
            {
                return MarkDestagedStatus.Ok;
            }

            // With the seal committed, no record of the segment is still in flight.
            segment.Destaged = true;
            foreach (var entry in segment.Records)
            {
                ReleaseDead(entry.Address, LogFrame.FrameLength(entry.RecordLengthBytes));
            }

            segment.Records.Clear();
            segment.Records.TrimExcess();
            segment.ByLsn.Clear();
            segment.ByLsn.TrimExcess();
            foreach (var chunk in _chunks.Values)
            {
                if (chunk.LiveBytes == 0 && chunk.Number < _lastCommittedChunk && !chunk.Retired && _fault is null)
                {
                    chunk.Retired = true;
                    (reclaimable ??= []).Add(chunk);
                }
            }

            SignalSpaceFreed();
        }

        if (reclaimable is not null)
        {
            lock (_spareLock)
            {
                _reclaim = _reclaim.ContinueWith(_ => Recycle(reclaimable), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            }
        }

        return MarkDestagedStatus.Ok;
    }

    /// <summary>Waits for background recycling started by <see cref="MarkDestaged"/> (tests and shutdown).</summary>
    public void WaitForReclaim()
    {
        Task reclaim;
        lock (_spareLock)
        {
            reclaim = _reclaim;
        }

        if (!reclaim.Wait(TimeSpan.FromSeconds(60)))
        {
            throw new TimeoutException("chunk recycling did not finish within 60 s");
        }
    }

    private void ReleaseDead(LogAddress address, int frameLength)
    {
        AssertLockHeld();
        if (_chunks.TryGetValue(address.ChunkNumber, out var chunk))
        {
            chunk.LiveBytes -= frameLength;
        }

        _reservedBytes -= frameLength;
    }

    private void Recycle(List<Chunk> chunks)
    {
        foreach (var chunk in chunks)
        {
            lock (_lock)
            {
                // A reader holds the file open: leave the chunk for the next reclaim.
                if (chunk.Readers > 0 || _fault is not null || _stopping)
                {
                    chunk.Retired = false;
                    continue;
                }

                _chunks.Remove(chunk.Number);
            }

            chunk.File.Dispose();
            var spare = Path.Combine(_directory, $"spare-{Guid.NewGuid():N}{SpareExtension}");
            try
            {
                // Reused as it is: its old frames carry sequences below any the log writes from now on, so recovery
                // never takes them for frames of the new use (docs/log-format.md, "Chunks"). Zero-filling it again
                // would double the log's disk writes.
                _fileSystem.Rename(ChunkPath(chunk.Number), spare);
                _fileSystem.SyncDirectory(_directory);
                lock (_spareLock)
                {
                    _spares.Enqueue(spare);
                }
            }
            catch (IOException)
            {
                // A spare that could not be prepared is simply not used; the writer creates a new chunk instead.
            }
        }
    }
}
