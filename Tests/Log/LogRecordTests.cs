using Converge.Log;
using Xunit;

namespace Converge.Tests.Log;

public sealed class LogRecordTests
{
    [Fact]
    public void Encode_ThenDecode_RoundTripsEveryKind()
    {
        var volume = Guid.NewGuid();
        var segment = Guid.NewGuid();
        var payload = new byte[8192];
        new Random(7).NextBytes(payload);
        var headers = new[]
        {
            LogRecordHeader.ForWrite(volume, new Lsn(3, 42), segment, 1 << 20, payload.Length),
            LogRecordHeader.ForZero(volume, new Lsn(3, 43), segment, 0, 1UL << 30),
            LogRecordHeader.ForFence(volume, 4, Guid.Empty),
            LogRecordHeader.ForSeal(volume, 4, segment),
        };
        foreach (var header in headers)
        {
            var body = header.Kind == LogRecordKind.Write ? payload : [];
            using var record = LogRecord.EncodePooled(header, body);
            Assert.Equal(LogRecord.EncodedLength(body.Length), record.LengthBytes);
            Assert.Equal(LogRecordDecodeStatus.Ok, LogRecord.TryDecode(record.Span, out var decoded));
            Assert.Equal(header, decoded);
            Assert.True(LogRecord.Payload(record.Span, decoded).SequenceEqual(body));
        }
    }

    [Fact]
    public void Decode_RefusesAnyFlippedBit()
    {
        using var record = LogRecord.EncodePooled(LogRecordHeader.ForWrite(Guid.NewGuid(), new Lsn(1, 1), Guid.NewGuid(), 0, 512), new byte[512]);
        var bytes = record.Span.ToArray();
        for (var i = 0; i < bytes.Length; i += 7)
        {
            bytes[i] ^= 0x10;
            Assert.NotEqual(LogRecordDecodeStatus.Ok, LogRecord.TryDecode(bytes, out _));
            bytes[i] ^= 0x10;
        }

        Assert.Equal(LogRecordDecodeStatus.Ok, LogRecord.TryDecode(bytes, out _));
        Assert.Equal(LogRecordDecodeStatus.BadLength, LogRecord.TryDecode(bytes.AsSpan(0, bytes.Length - 1), out _));
    }

    [Fact]
    public void Encode_RejectsInconsistentHeaders_AndWritesNothing()
    {
        var destination = new byte[256];
        var bad = LogRecordHeader.ForWrite(Guid.NewGuid(), new Lsn(1, 1), Guid.NewGuid(), 0, 16) with { LengthBytes = 32 };
        Assert.Throws<ArgumentException>(() => LogRecord.Encode(bad, new byte[16], destination));
        Assert.Throws<ArgumentException>(() => LogRecord.Encode(LogRecordHeader.ForZero(Guid.NewGuid(), new Lsn(1, 1), Guid.NewGuid(), 0, 0), [], destination));
        Assert.False(destination.AsSpan().ContainsAnyExcept((byte)0));
    }

    [Fact]
    public void JoinedRecords_SplitBackIntoTheSameRecords_AndABrokenTailIsReported()
    {
        var volume = Guid.NewGuid();
        var segment = Guid.NewGuid();
        var records = new List<byte[]>();
        foreach (var size in new[] { 4096, 0, 12288 })
        {
            var header = size == 0
                ? LogRecordHeader.ForZero(volume, new Lsn(2, (ulong)records.Count + 1), segment, 0, 4096)
                : LogRecordHeader.ForWrite(volume, new Lsn(2, (ulong)records.Count + 1), segment, 8192, size);
            using var record = LogRecord.EncodePooled(header, new byte[size]);
            records.Add(record.Span.ToArray());
        }

        var joined = records.SelectMany(r => r).ToArray();
        var split = LogRecord.SplitJoined(joined, out var malformed);
        Assert.False(malformed);
        Assert.Equal(records.Count, split.Count);
        for (var i = 0; i < records.Count; i++)
        {
            Assert.True(split[i].Span.SequenceEqual(records[i]), $"record {i}");
            Assert.Equal(LogRecordDecodeStatus.Ok, LogRecord.TryDecode(split[i].Span, out _));
        }

        // Cut inside the last record, or a few stray bytes after the whole ones: the whole ones come out, the rest is flagged.
        Assert.Equal(2, LogRecord.SplitJoined(joined.AsMemory(0, joined.Length - 1), out malformed).Count);
        Assert.True(malformed);
        Assert.Equal(3, LogRecord.SplitJoined(joined.Concat(new byte[10]).ToArray(), out malformed).Count);
        Assert.True(malformed);
        Assert.Empty(LogRecord.SplitJoined(ReadOnlyMemory<byte>.Empty, out malformed));
        Assert.False(malformed);
    }

    [Fact]
    public void Record_GoldenBytes_AreFrozen()
    {
        var header = LogRecordHeader.ForWrite(
            new Guid("00112233-4455-6677-8899-aabbccddeeff"), new Lsn(2, 5), new Guid("ffeeddcc-bbaa-9988-7766-554433221100"), 8192, 8);
        var destination = new byte[LogRecord.EncodedLength(8)];
        LogRecord.Encode(header, "ABCDEFGH"u8, destination);
        Assert.Equal(GoldenBytes.Record, Convert.ToHexString(destination));
    }
}
