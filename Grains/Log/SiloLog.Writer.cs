using System.Diagnostics;
using Converge.Buffers;
using Converge.Grains.Io;
using Converge.Log;

namespace Converge.Grains.Log;

public sealed partial class SiloLog
{
    /// <summary>Commits of up to this many appends answer from the writer thread (where the caller allows it).</summary>
    private const int MaxAnswersOnWriter = 2;

    private void WriterLoop()
    {
        var batch = new List<PendingAppend>(64);
        var touched = new List<Chunk>(2);
        while (true)
        {
            var batchBytes = 0;
            lock (_lock)
            {
                while (_queue.Count == 0 && !_stopping)
                {
                    Monitor.Wait(_lock);
                }

                if (_queue.Count == 0)
                {
                    return;
                }

                // Whatever arrived during the previous commit, bounded in bytes; no timers.
                while (_queue.TryPeek(out var next) && (batch.Count == 0 || batchBytes + next.FrameLengthBytes <= _options.MaxBatchBytes))
                {
                    batch.Add(_queue.Dequeue());
                    batchBytes += next.FrameLengthBytes;
                }
            }

            if (_bandwidth?.Take(batchBytes) is { } wait && wait > TimeSpan.Zero)
            {
                // Capped: appends keep queueing meanwhile and go out together in the next batch.
                Thread.Sleep(wait);
            }

            try
            {
                WriteBatch(batch, batchBytes, touched);
            }
            catch (Exception e)
            {
                Poison(batch, e);
                return;
            }

            CompleteBatch(batch, batchBytes);
            batch.Clear();
            touched.Clear();
        }
    }

    private void WriteBatch(List<PendingAppend> batch, int batchBytes, List<Chunk> touched)
    {
        // Room for the end marker after the last frame (see WriteRun).
        var buffer = LargeBuffers.Rent(batchBytes + LogFrame.HeaderLengthBytes);
        try
        {
            var runStart = 0;
            var runFileOffset = _writeOffsetBytes;
            var cursor = 0;
            var committedBefore = _committedThrough;
            foreach (var pending in batch)
            {
                var frameLength = pending.FrameLengthBytes;
                if (_writeOffsetBytes + frameLength > _options.ChunkSizeBytes)
                {
                    // The frame does not fit: end the chunk here and continue in the next one.
                    WriteRun(buffer, runStart, cursor - runStart, runFileOffset, touched, separateMarker: true);
                    _current = NextChunk();
                    _writeOffsetBytes = 0;
                    runStart = cursor;
                    runFileOffset = 0;
                }

                // Every admitted record was verified (AppendCommittedAsync), so its CRC-32C is the residue.
                _previousCrc = LogFrame.Write(buffer.AsSpan(cursor, frameLength), pending.Record.Span, Crc32C.Residue, _nextFrameSequence, committedBefore, _previousCrc);
                _nextFrameSequence++;
                pending.Address = new LogAddress(_current.Number, _writeOffsetBytes);
                _writeOffsetBytes += frameLength;
                cursor += frameLength;
            }

            WriteRun(buffer, runStart, cursor - runStart, runFileOffset, touched, separateMarker: false);
            Debug.Assert(cursor == batchBytes, "every admitted frame is written");
            foreach (var chunk in touched)
            {
                Flush(chunk, batch.Count);
            }

            _committedThrough = _nextFrameSequence - 1;
        }
        finally
        {
            LargeBuffers.Return(buffer);
        }
    }

    /// <summary>
    /// Writes <paramref name="length"/> bytes of frames at <paramref name="fileOffset"/> of the current chunk, followed by
    /// an end marker (a zero frame header) when it fits: a recycled chunk is not zero-filled, so the marker is what
    /// tells recovery that the written part ends here rather than at whatever an earlier use left behind
    /// (docs/log-format.md). The next batch overwrites it. At the end of a batch the marker rides in the same write
    /// (the buffer has room after the frames); when the writer leaves a chunk it is written on its own.
    /// </summary>
    private void WriteRun(byte[] buffer, int start, int length, int fileOffset, List<Chunk> touched, bool separateMarker)
    {
        var markerFits = fileOffset + length + LogFrame.HeaderLengthBytes <= _options.ChunkSizeBytes;
        if (length == 0 && !(separateMarker && markerFits))
        {
            return;
        }

        Debug.Assert(fileOffset + length <= _options.ChunkSizeBytes, "a run stays inside its chunk");
        if (separateMarker)
        {
            if (length > 0)
            {
                _current.File.Write(fileOffset, buffer.AsSpan(start, length));
            }

            if (markerFits)
            {
                _current.File.Write(fileOffset + length, ZeroBlock.AsSpan(0, LogFrame.HeaderLengthBytes));
            }
        }
        else
        {
            var marker = markerFits ? LogFrame.HeaderLengthBytes : 0;
            buffer.AsSpan(start + length, marker).Clear();
            _current.File.Write(fileOffset, buffer.AsSpan(start, length + marker));
        }

        touched.Add(_current);
    }

    private void Flush(Chunk chunk, int records)
    {
        if (_options.Durability == LogDurability.Memory)
        {
            return;
        }

        var started = Stopwatch.GetTimestamp();
        chunk.File.FlushData();
        var elapsed = Stopwatch.GetElapsedTime(started);
        Interlocked.Increment(ref _flushCount);
        _instruments.FlushDuration.Record(elapsed.TotalMilliseconds);
        if (elapsed >= _options.SlowFlushThreshold)
        {
            LogSlowFlush(_logger, chunk.File.Path, elapsed.TotalMilliseconds, records);
        }
    }

    private void CompleteBatch(List<PendingAppend> batch, int batchBytes)
    {
        lock (_lock)
        {
            foreach (var pending in batch)
            {
                IndexCommitted(pending.Header, pending.Address, pending.FrameLengthBytes, pending.Record.Length);
            }

            _admittedCount -= batch.Count;
            _lastCommittedChunk = _current.Number;
            SignalSpaceFreed();
        }

        Interlocked.Increment(ref _batchCount);
        Interlocked.Add(ref _committedRecordCount, batch.Count);
        _instruments.BatchRecords.Record(batch.Count);
        _instruments.BatchBytes.Record(batchBytes);
        _instruments.Appends.Add(batch.Count, new KeyValuePair<string, object?>("status", nameof(AppendStatus.Ok)));
        var now = Stopwatch.GetTimestamp();
        // A small group's answers leave from here: its awaiters' continuations only send them, which costs less than
        // waking a pool thread to do it. Larger groups hand them off, so the next commit is not held up by them.
        var answerHere = batch.Count <= MaxAnswersOnWriter;
        foreach (var pending in batch)
        {
            _instruments.AppendDuration.Record(Stopwatch.GetElapsedTime(pending.AdmittedTimestamp, now).TotalMilliseconds);
            pending.Succeed(new AppendResult(AppendStatus.Ok, pending.Address), answerHere && pending.AnswerOnWriter);
        }
    }

    /// <summary>Adds a committed record to the index and its chunk's live bytes (during appends and recovery).</summary>
    private void IndexCommitted(in LogRecordHeader header, LogAddress address, int frameLength, int recordLength)
    {
        AssertLockHeld();
        var chunk = _chunks[address.ChunkNumber];
        if (header.Kind == LogRecordKind.Fence)
        {
            var fence = _fences.TryGetValue(header.VolumeId, out var known) ? known : _fences[header.VolumeId] = new FenceState(header.Epoch);
            if (header.Epoch < fence.Epoch)
            {
                // Only possible during recovery of a log written out of order; the newer fence stands.
                ReleaseDead(address, frameLength);
                return;
            }

            if (fence.Address is { } older)
            {
                // The newer fence supersedes the older record, whose chunk may now be reclaimed.
                ReleaseDead(older, fence.FrameLengthBytes);
            }

            fence.Epoch = header.Epoch;
            fence.Address = address;
            fence.FrameLengthBytes = frameLength;
            chunk.LiveBytes += frameLength;
            return;
        }

        var segment = _segments[header.SegmentId];
        if (segment.Destaged)
        {
            // Only a second seal (an orphan sweep's, a writer's retry) can commit after the destage, which waited for the
            // first seal's commit and so for every record admitted before it; it joins a segment that holds no bytes.
            if (header.Kind != LogRecordKind.Seal)
            {
                // Acknowledged to its writer, yet never destaged: the very loss the seal-commit rule prevents.
                LogCommittedAfterDestage(_logger, header.Lsn, header.SegmentId);
            }

            chunk.LiveBytes += frameLength;
            ReleaseDead(address, frameLength);
            return;
        }

        segment.ByLsn[header.Lsn] = segment.Records.Count;
        segment.Records.Add(new LogIndexEntry(address, header.Lsn, header.Kind, header.OffsetBytes, header.LengthBytes, recordLength));
        segment.SealCommitted |= header.Kind == LogRecordKind.Seal;
        chunk.LiveBytes += frameLength;
    }

    private void Poison(List<PendingAppend> batch, Exception cause)
    {
        var fault = cause as StorageFaultException ?? new StorageFaultException($"log write failed: {cause.Message}");
        LogPoisoned(_logger, fault.Message, cause);
        List<PendingAppend> failed;
        lock (_lock)
        {
            _fault = fault;
            failed = [.. batch, .. _queue];
            _queue.Clear();
            SignalSpaceFreed();
        }

        // Nothing in the batch is reported committed: its fdatasync did not succeed.
        foreach (var pending in failed)
        {
            pending.Fail(new StorageFaultException($"append failed, the log is poisoned: {fault.Message}", fault.Errno));
        }
    }

    private void SignalSpaceFreed()
    {
        AssertLockHeld();
        var signal = _spaceFreed;
        _spaceFreed = NewSignal();
        signal.TrySetResult();
    }
}
