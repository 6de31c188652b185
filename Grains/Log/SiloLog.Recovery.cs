using System.Globalization;
using Converge.Log;

namespace Converge.Grains.Log;

/// <summary>Recovery: the rules are the table "Recovery cases" in docs/log-format.md, one test per row.</summary>
public sealed partial class SiloLog
{
    private void Recover()
    {
        var leftovers = _fileSystem.List(_directory, "*.tmp");
        foreach (var leftover in leftovers)
        {
            _fileSystem.Delete(leftover);
        }

        if (leftovers.Count > 0)
        {
            _fileSystem.SyncDirectory(_directory);
        }

        var chunks = OpenChunks();
        var spares = _fileSystem.List(_directory, "*" + SpareExtension);
        foreach (var spare in spares)
        {
            if (chunks.Count > 0)
            {
                _spares.Enqueue(spare);
            }
            else
            {
                // A new log starts its sequence at 1 again: frames left in old spares could pass for its own.
                _fileSystem.Delete(spare);
            }
        }

        if (chunks.Count == 0)
        {
            if (spares.Count > 0)
            {
                _fileSystem.SyncDirectory(_directory);
            }

            var path = ChunkPath(1);
            PrepareZeroedFile(path + ".tmp");
            _fileSystem.Rename(path + ".tmp", path);
            _fileSystem.SyncDirectory(_directory);
            var first = new Chunk(1, _fileSystem.Open(path, create: false));
            _chunks.Add(1, first);
            _current = first;
            _lastCommittedChunk = 1;
            Recovery = new RecoveryReport(1, 0, null, 0, []);
            return;
        }

        var scan = new RecoveryScan(this, chunks);
        scan.Run();
        Recovery = scan.Report;
        _current = chunks[scan.WriteChunkIndex];
        _writeOffsetBytes = scan.WriteOffsetBytes;
        _nextFrameSequence = scan.NextFrameSequence;
        _committedThrough = scan.NextFrameSequence - 1;
        _previousCrc = scan.PreviousCrc;
        _lastCommittedChunk = _current.Number;
    }

    private List<Chunk> OpenChunks()
    {
        var chunks = new List<Chunk>();
        foreach (var path in _fileSystem.List(_directory, "*.log"))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (name.Length != 20 || !long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number < 1)
            {
                throw new InvalidDataException($"unexpected file {path} in the log directory: chunk files are named by a 20-digit number");
            }

            var chunk = new Chunk(number, _fileSystem.Open(path, create: false));
            chunks.Add(chunk);
            _chunks.Add(number, chunk);
        }

        chunks.Sort((a, b) => a.Number.CompareTo(b.Number));
        return chunks;
    }

    /// <summary>Called by the scan, in log order, for every verified frame.</summary>
    private void IndexRecovered(ReadOnlySpan<byte> record, uint recordCrc, LogAddress address, RecoveryScan scan)
    {
        var frameLength = LogFrame.FrameLength(record.Length);
        if (LogRecord.TryDecodeChecksummed(record, recordCrc, out var header) != LogRecordDecodeStatus.Ok)
        {
            // The frame CRC held, so the writer wrote these bytes; appends verify records, so this is a bug, not rot.
            scan.AddCorrupt(address, frameLength, 0, 0, record);
            return;
        }

        lock (_lock)
        {
            _reservedBytes += frameLength;
            if (header.Kind != LogRecordKind.Fence)
            {
                if (!_segments.TryGetValue(header.SegmentId, out var segment))
                {
                    segment = new SegmentState(header.SegmentId, header.VolumeId, header.Epoch);
                    _segments.Add(header.SegmentId, segment);
                }

                segment.AdmittedBytes += frameLength;
                segment.Sealed |= header.Kind == LogRecordKind.Seal;
            }

            IndexCommitted(header, address, frameLength, record.Length);
        }
    }

    /// <summary>Zeroes a chunk from <paramref name="offsetBytes"/> to its end and makes the zeros durable.</summary>
    private long ZeroFrom(Chunk chunk, int offsetBytes)
    {
        for (long offset = offsetBytes; offset < _options.ChunkSizeBytes; offset += ZeroBlockBytes)
        {
            var length = (int)Math.Min(ZeroBlockBytes, _options.ChunkSizeBytes - offset);
            chunk.File.Write(offset, ZeroBlock.AsSpan(0, length));
        }

        chunk.File.FlushData();
        return _options.ChunkSizeBytes - offsetBytes;
    }

    private void ReportTruncated(LogAddress address, long bytes) => LogTruncated(_logger, address, bytes);

    private void ReportCorrupt(CorruptRegion region) => LogCorrupt(_logger, region.Start, region.LengthBytes, region.ProbableSegmentId);
}
