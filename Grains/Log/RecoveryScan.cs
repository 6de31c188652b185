using System.Diagnostics;
using Converge.Log;

namespace Converge.Grains.Log;

public sealed partial class SiloLog
{
    /// <summary>
    /// One pass over the chunks in order. A frame is accepted when its own CRC holds, its sequence is the next expected
    /// (or any later one at the start of a chunk after a gap left by recycling), and it chains to its predecessor's CRC.
    /// </summary>
    private sealed class RecoveryScan(SiloLog log, List<Chunk> chunks)
    {
        private readonly List<CorruptRegion> _corrupt = [];
        private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>((int)log._options.ChunkSizeBytes);
        private byte[]? _scratch;
        private ulong? _expected;
        private uint? _previousCrc;
        private long _frames;
        private LogAddress? _truncatedAt;
        private long _truncatedBytes;
        private int _loaded = -1;

        public int WriteChunkIndex { get; private set; }

        public int WriteOffsetBytes { get; private set; }

        public ulong NextFrameSequence => _expected ?? 1;

        public uint PreviousCrc => _previousCrc ?? 0;

        public RecoveryReport Report => new(chunks.Count, _frames, _truncatedAt, _truncatedBytes, _corrupt);

        private int MaxRecord => log._options.MaxRecordBytes;

        public void Run()
        {
            var ci = 0;
            var pos = 0;
            while (ci < chunks.Count)
            {
                Load(ci, _buffer);
                var afterGap = pos == 0 && ci > 0 && chunks[ci].Number != chunks[ci - 1].Number + 1;
                if (afterGap)
                {
                    _previousCrc = null;
                }

                var next = ScanChunk(ci, pos, afterGap);
                if (next is null)
                {
                    return;
                }

                (ci, pos) = next.Value;
            }
        }

        /// <summary>Scans one chunk; returns where to continue, or null when the log ends (after a truncation).</summary>
        private (int Chunk, int Offset)? ScanChunk(int ci, int pos, bool afterGap)
        {
            while (true)
            {
                if (LogFrame.TryParse(_buffer, pos, MaxRecord, out var frame) && Follows(frame, afterGap && pos == 0))
                {
                    Accept(ci, frame);
                    pos += frame.FrameLengthBytes;
                    WriteChunkIndex = ci;
                    WriteOffsetBytes = pos;
                    continue;
                }

                if (LogFrame.IsZeroHeader(_buffer, pos) && !AnyLaterFrame(_buffer, pos + LogFrame.AlignmentBytes))
                {
                    // The written part of this chunk ends here: the end marker of the last batch, or of a chunk the writer
                    // left when a frame did not fit. What follows is zeros or frames of the chunk's earlier use.
                    return ci + 1 < chunks.Count ? (ci + 1, 0) : null;
                }

                var found = FindNext(ci, pos + LogFrame.AlignmentBytes, out var durableAfter);
                if (found is null || !durableAfter)
                {
                    // Torn tail: nothing after this point was ever durable before a later commit, so nothing was acknowledged.
                    Truncate(ci, pos);
                    return null;
                }

                var (fci, f) = found.Value;
                var length = fci == ci ? f.OffsetBytes - pos : _buffer.Length - pos;
                AddCorrupt(new LogAddress(chunks[ci].Number, pos), length, _expected ?? 0, f.Sequence - (_expected ?? f.Sequence), _buffer.AsSpan(pos + LogFrame.HeaderLengthBytes));
                _expected = f.Sequence;
                _previousCrc = null;
                if (fci != ci)
                {
                    return (fci, f.OffsetBytes);
                }

                pos = f.OffsetBytes;
            }
        }

        private bool Follows(in FrameInfo frame, bool sequenceMayJump)
        {
            var sequenceOk = _expected is null || frame.Sequence == _expected || (sequenceMayJump && frame.Sequence > _expected);
            return sequenceOk && (_previousCrc is null || frame.PreviousCrc == _previousCrc);
        }

        private void Accept(int ci, in FrameInfo frame)
        {
            var record = _buffer.AsSpan(frame.RecordOffsetBytes, frame.RecordLengthBytes);
            log.IndexRecovered(record, frame.RecordCrc, new LogAddress(chunks[ci].Number, frame.OffsetBytes), this);
            _expected = frame.Sequence + 1;
            _previousCrc = frame.Crc;
            _frames++;
        }

        /// <summary>
        /// The first verified frame after the damage with a later sequence, and whether any frame after the damage was
        /// written when the damaged frame was already durable (its committed-through covers it): then the damage is
        /// corruption of committed data, not a torn write.
        /// </summary>
        private (int Chunk, FrameInfo Frame)? FindNext(int ci, int from, out bool durableAfter)
        {
            durableAfter = false;
            (int, FrameInfo)? first = null;
            for (var c = ci; c < chunks.Count; c++)
            {
                byte[] data;
                if (c == ci)
                {
                    data = _buffer;
                }
                else
                {
                    data = _scratch ??= GC.AllocateUninitializedArray<byte>(_buffer.Length);
                    Load(c, data);
                    from = 0;
                }

                for (var pos = from; pos + LogFrame.HeaderLengthBytes <= data.Length; pos += LogFrame.AlignmentBytes)
                {
                    if (!LogFrame.TryParse(data, pos, MaxRecord, out var frame) || (_expected is { } e && frame.Sequence <= e))
                    {
                        continue;
                    }

                    first ??= (c, frame);
                    if (_expected is null || frame.CommittedThrough >= _expected)
                    {
                        durableAfter = true;
                        return first;
                    }

                    pos += frame.FrameLengthBytes - LogFrame.AlignmentBytes;
                }
            }

            return first;
        }

        /// <summary>
        /// Whether a verified frame of this use of the chunk lies after <paramref name="from"/>: frames left by the chunk's
        /// earlier use (it was recycled without zero-filling) carry sequences below the next expected one and do not count.
        /// </summary>
        private bool AnyLaterFrame(byte[] data, int from)
        {
            for (var pos = from; pos + LogFrame.HeaderLengthBytes <= data.Length; pos += LogFrame.AlignmentBytes)
            {
                if (LogFrame.TryParse(data, pos, MaxRecord, out var frame) && (_expected is not { } e || frame.Sequence >= e))
                {
                    return true;
                }
            }

            return false;
        }

        private void Truncate(int ci, int pos)
        {
            var address = new LogAddress(chunks[ci].Number, pos);
            _truncatedAt = address;
            _truncatedBytes += log.ZeroFrom(chunks[ci], pos);
            for (var c = ci + 1; c < chunks.Count; c++)
            {
                Load(c, _scratch ??= GC.AllocateUninitializedArray<byte>(_buffer.Length));
                if (_scratch.AsSpan().ContainsAnyExcept((byte)0))
                {
                    _truncatedBytes += log.ZeroFrom(chunks[c], 0);
                }
            }

            WriteChunkIndex = ci;
            WriteOffsetBytes = pos;
            log.ReportTruncated(address, _truncatedBytes);
        }

        public void AddCorrupt(LogAddress start, int lengthBytes, ulong firstMissing, ulong missingCount, ReadOnlySpan<byte> probableRecord)
        {
            var hint = LogRecord.TryDecodeHeader(probableRecord, out var header) == LogRecordDecodeStatus.Ok;
            var region = new CorruptRegion(start, lengthBytes, firstMissing, missingCount, hint ? header.SegmentId : null, hint ? header.VolumeId : null);
            _corrupt.Add(region);
            log.ReportCorrupt(region);
        }

        private void Load(int ci, byte[] data)
        {
            if (ReferenceEquals(data, _buffer))
            {
                if (_loaded == ci)
                {
                    return;
                }

                _loaded = ci;
            }

            var read = 0;
            while (read < data.Length)
            {
                var n = chunks[ci].File.Read(read, data.AsSpan(read));
                if (n == 0)
                {
                    break;
                }

                read += n;
            }

            data.AsSpan(read).Clear();
            Debug.Assert(read <= data.Length, "a chunk is read whole");
        }
    }
}
