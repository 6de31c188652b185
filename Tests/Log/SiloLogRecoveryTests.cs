using Converge.Grains.Io;
using Converge.Grains.Log;
using Converge.Log;
using Xunit;

namespace Converge.Tests.Log;

/// <summary>One test per row of the "Recovery cases" table in docs/log-format.md.</summary>
public sealed class SiloLogRecoveryTests : IDisposable
{
    private const int WriteFrameBytes = 32 + 84 + 4096 + 4;
    private readonly LogFixture _fixture = new();

    public void Dispose() => _fixture.Dispose();

    [Fact]
    public void Recovery_EmptyLog_CreatesFirstChunk()
    {
        using var log = _fixture.Open();
        Assert.True(log.Recovery.IsClean);
        Assert.Equal(0, log.Recovery.FrameCount);
        Assert.Equal([1L], log.GetChunkNumbers());
        Assert.Equal(64 * 1024, new FileInfo(_fixture.ChunkPath(1)).Length);
    }

    [Fact]
    public async Task Recovery_CleanLog_RebuildsTheIndexAndStaysWritable()
    {
        var addresses = await WriteRecords(5);
        using var log = _fixture.Open();
        Assert.True(log.Recovery.IsClean);
        Assert.Equal(5, log.Recovery.FrameCount);
        AssertRecords(log, addresses);
        var next = await LogFixture.AppendWrite(log, 6, 6);
        Assert.Equal(new LogAddress(1, 5 * WriteFrameBytes), next.Address);
    }

    [Fact]
    public async Task Recovery_TornTailMidHeader_IsTruncatedAndTheLogStaysWritable()
    {
        var addresses = await WriteRecords(3);
        // The last frame's header is half written: its first 16 bytes reached the disk, the rest did not.
        Damage(addresses[2], offset: 16, length: WriteFrameBytes - 16, value: 0);
        await AssertTruncatedAt(addresses[2], survivors: addresses[..2]);
    }

    [Fact]
    public async Task Recovery_TornTailMidPayload_IsTruncatedAndTheLogStaysWritable()
    {
        var addresses = await WriteRecords(3);
        Damage(addresses[2], offset: 32 + 84 + 2048, length: 2048 + 4, value: 0);
        await AssertTruncatedAt(addresses[2], survivors: addresses[..2]);
    }

    [Fact]
    public async Task Recovery_TornWriteOfTheLastBatch_WithLaterFramesOnDisk_IsTruncated()
    {
        // One batch of three frames, its first frame torn but later pages on disk: nothing of it was acknowledged.
        using (var log = _fixture.Open())
        {
            Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, 1, 1)).Status);
        }

        using (var log = _fixture.Open())
        {
            var hold = _fixture.FileSystem.Hold("*.log");
            var first = LogFixture.AppendWrite(log, 2, 2);
            await LogFixture.Within(hold.Reached, "the first commit to block");
            var batch = new[] { LogFixture.AppendWrite(log, 3, 3), LogFixture.AppendWrite(log, 4, 4), LogFixture.AppendWrite(log, 5, 5) };
            hold.Dispose();
            await LogFixture.Within(Task.WhenAll(batch.Prepend(first)), "all appends to commit");
            Assert.True(log.BatchCount >= 2);
        }

        // Frames 3..5 share a batch (committed-through = 2); tear frame 3 as if the crash came before that batch's fdatasync.
        Damage(new LogAddress(1, 2 * WriteFrameBytes), offset: 40, length: 8, value: 0xEE);
        using var reopened = _fixture.Open();
        Assert.Equal(new LogAddress(1, 2 * WriteFrameBytes), reopened.Recovery.TruncatedAt);
        Assert.Empty(reopened.Recovery.CorruptRegions);
        Assert.Equal(2, reopened.GetSegment(LogFixture.Segment)!.Records.Count);
    }

    [Fact]
    public async Task Recovery_BadChecksumMidLog_IsReportedForRepair_AndNeverReturnedAsData()
    {
        var addresses = await WriteRecords(4);
        Damage(addresses[1], offset: 32 + 84 + 100, length: 1, value: 0xFF);
        using var log = _fixture.Open();
        Assert.Null(log.Recovery.TruncatedAt);
        var corrupt = Assert.Single(log.Recovery.CorruptRegions);
        Assert.Equal(addresses[1], corrupt.Start);
        Assert.Equal(LogFixture.Segment, corrupt.ProbableSegmentId);
        Assert.Equal(2UL, corrupt.FirstMissingFrameSequence);
        Assert.Equal(1UL, corrupt.MissingFrameCount);
        var records = log.GetSegment(LogFixture.Segment)!.Records;
        Assert.Equal([addresses[0], addresses[2], addresses[3]], records.Select(r => r.Address));
        Assert.Throws<LogCorruptionException>(() => log.ReadRecord(addresses[1], new byte[8192]));
        Assert.Equal(4, LogFixture.ReadFill(log, addresses[3]));
        Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, 5, 5)).Status);
    }

    [Fact]
    public async Task Recovery_ZeroedChunkTail_EndsTheLogCleanly()
    {
        var addresses = await WriteRecords(3);
        // The last frame never reached the disk at all (its pages stayed zero).
        Damage(addresses[2], offset: 0, length: WriteFrameBytes, value: 0);
        using var log = _fixture.Open();
        Assert.True(log.Recovery.IsClean);
        Assert.Equal(2, log.Recovery.FrameCount);
        Assert.Equal(addresses[2], (await LogFixture.AppendWrite(log, 9, 9)).Address);
    }

    [Fact]
    public async Task Recovery_MultipleChunks_FollowsFramesAcrossChunkBoundaries()
    {
        // 64 KiB chunks hold 15 frames of 4 KiB records; 40 records span three chunks.
        var addresses = await WriteRecords(40);
        Assert.Equal(3, addresses[^1].ChunkNumber);
        using var log = _fixture.Open();
        Assert.True(log.Recovery.IsClean);
        Assert.Equal(40, log.Recovery.FrameCount);
        AssertRecords(log, addresses);
    }

    [Fact]
    public async Task Recovery_FencedVolume_StaysFencedAfterRestart()
    {
        using (var log = _fixture.Open())
        {
            Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, 1, 1, epoch: 1)).Status);
            Assert.Equal(AppendStatus.Ok, (await log.FenceAsync(LogFixture.Volume, 2)).Status);
        }

        using var reopened = _fixture.Open();
        Assert.Equal(2UL, reopened.GetFenceEpoch(LogFixture.Volume));
        Assert.Equal(AppendStatus.Fenced, (await LogFixture.AppendWrite(reopened, 2, 2, segment: Guid.NewGuid(), epoch: 1)).Status);
    }

    [Fact]
    public async Task Recovery_SealedSegment_StaysSealedAfterRestart()
    {
        using (var log = _fixture.Open())
        {
            Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, 1, 1)).Status);
            Assert.Equal(AppendStatus.Ok, (await log.SealAsync(LogFixture.Segment, LogFixture.Volume, 1)).Status);
        }

        using var reopened = _fixture.Open();
        var segment = reopened.GetSegment(LogFixture.Segment)!;
        Assert.True(segment.IsSealed);
        Assert.Equal([LogRecordKind.Write, LogRecordKind.Seal], segment.Records.Select(r => r.Kind));
        Assert.Equal(AppendStatus.Sealed, (await LogFixture.AppendWrite(reopened, 2, 2)).Status);
    }

    [Fact]
    public async Task Recovery_ReclaimedChunk_IsGoneAndTheRestRecovers()
    {
        var old = Guid.NewGuid();
        var live = Guid.NewGuid();
        using (var log = _fixture.Open())
        {
            for (ulong i = 1; i <= 15; i++)
            {
                Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, i, 1, segment: old)).Status);
            }

            Assert.Equal(AppendStatus.Ok, (await log.SealAsync(old, LogFixture.Volume, 1)).Status);
            for (ulong i = 1; i <= 20; i++)
            {
                Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, i, (byte)i, segment: live)).Status);
            }

            Assert.Equal([1L, 2L, 3L], log.GetChunkNumbers());
            var before = log.NvramUsedBytes;
            Assert.Equal(MarkDestagedStatus.Ok, log.MarkDestaged(old));
            Assert.Equal(before - (15 * WriteFrameBytes) - 120, log.NvramUsedBytes);
            log.WaitForReclaim();
            Assert.Equal([2L, 3L], log.GetChunkNumbers());
        }

        Assert.False(File.Exists(_fixture.ChunkPath(1)));
        using var reopened = _fixture.Open();
        Assert.True(reopened.Recovery.IsClean, $"corrupt: {reopened.Recovery.CorruptRegions.Count}, truncated at {reopened.Recovery.TruncatedAt}");
        Assert.Null(reopened.GetSegment(old)?.Records.FirstOrDefault(r => r.Kind == LogRecordKind.Write && r.Address.ChunkNumber == 1));
        var records = reopened.GetSegment(live)!.Records;
        Assert.Equal(20, records.Count);
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal((byte)(i + 1), LogFixture.ReadFill(reopened, records[i].Address));
        }
    }

    [Fact]
    public async Task Recovery_RecycledChunkReusedWithItsOldFrames_EndsWhereItsNewUseEnds()
    {
        // Chunk 1 is recycled as it is (not zero-filled) and used again; 8 KiB frames do not line up with its old
        // 4 KiB ones, and a burst of appends leaves it for the next chunk. Its old frames must read as neither a torn
        // tail nor corruption.
        var live = await FillUntilARecycledChunkIsInUse();
        using (var log = _fixture.Open())
        {
            Assert.True(log.Recovery.IsClean, $"corrupt: {log.Recovery.CorruptRegions.Count}, truncated at {log.Recovery.TruncatedAt}");
            var appends = Enumerable.Range(0, 8).Select(i => LogFixture.AppendWrite(log, (ulong)(100 + i), (byte)(100 + i), segment: live.Segment, payloadBytes: 8192)).ToList();
            var results = await Task.WhenAll(appends);
            for (var i = 0; i < results.Length; i++)
            {
                Assert.Equal(AppendStatus.Ok, results[i].Status);
                live.Expected.Add((results[i].Address, (byte)(100 + i)));
            }

            Assert.Contains(live.Expected, e => e.Address.ChunkNumber == live.Chunk + 1);
        }

        using var reopened = _fixture.Open();
        Assert.True(reopened.Recovery.IsClean, $"corrupt: {reopened.Recovery.CorruptRegions.Count}, truncated at {reopened.Recovery.TruncatedAt}");
        AssertSegment(reopened, live.Segment, live.Expected);
        var next = await LogFixture.AppendWrite(reopened, 200, 200, segment: live.Segment);
        var last = live.Expected.MaxBy(e => (e.Address.ChunkNumber, e.Address.OffsetBytes)).Address;
        Assert.Equal(new LogAddress(last.ChunkNumber, last.OffsetBytes + 8312), next.Address);
    }

    [Fact]
    public async Task Recovery_TornTailInARecycledChunk_IsTruncatedNotReportedCorrupt()
    {
        var live = await FillUntilARecycledChunkIsInUse();
        var torn = live.Expected[^1].Address;
        Damage(torn, offset: 32 + 84 + 4096, length: 4096, value: 0);
        using var reopened = _fixture.Open();
        Assert.Equal(torn, reopened.Recovery.TruncatedAt);
        Assert.Empty(reopened.Recovery.CorruptRegions);
        AssertSegment(reopened, live.Segment, live.Expected[..^1]);
    }

    [Fact]
    public async Task EnteringANewChunk_PreparesTheNextSpareInTheBackground()
    {
        using var log = _fixture.Open();
        ulong sequence = 0;
        async Task<LogAddress> FillInto(long chunk)
        {
            while (true)
            {
                var result = await LogFixture.AppendWrite(log, ++sequence, 1);
                Assert.Equal(AppendStatus.Ok, result.Status);
                if (result.Address.ChunkNumber == chunk)
                {
                    return result.Address;
                }
            }
        }

        Assert.Empty(Directory.GetFiles(_fixture.LogDirectory, "*.spare"));
        await FillInto(2);
        log.WaitForReclaim();
        var spare = Assert.Single(Directory.GetFiles(_fixture.LogDirectory, "*.spare"));
        var bytes = File.ReadAllBytes(spare);
        Assert.Equal(64 * 1024, bytes.Length);
        Assert.False(bytes.AsSpan().ContainsAnyExcept((byte)0), "a new spare is zero-filled");

        // Chunk 3 is the spare, renamed; entering it starts the next one.
        await FillInto(3);
        Assert.False(File.Exists(spare));
        log.WaitForReclaim();
        Assert.Single(Directory.GetFiles(_fixture.LogDirectory, "*.spare"));
    }

    private sealed record LiveSegment(Guid Segment, List<(LogAddress Address, byte Fill)> Expected, long Chunk = 0);

    /// <summary>
    /// Chunk 1 holds a destaged segment and is recycled to a spare; the live segment's 8 KiB records then fill chunks
    /// until the writer is in that spare, its old frames still in it (checked); its number is <see cref="LiveSegment.Chunk"/>.
    /// </summary>
    private async Task<LiveSegment> FillUntilARecycledChunkIsInUse()
    {
        var old = Guid.NewGuid();
        var live = new LiveSegment(Guid.NewGuid(), []);
        using var log = _fixture.Open();
        for (ulong i = 1; i <= 15; i++)
        {
            Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, i, 1, segment: old)).Status);
        }

        Assert.Equal(AppendStatus.Ok, (await log.SealAsync(old, LogFixture.Volume, 1)).Status);
        ulong sequence = 0;
        async Task Append()
        {
            var fill = (byte)(++sequence % 250 + 1);
            var result = await LogFixture.AppendWrite(log, sequence, fill, segment: live.Segment, payloadBytes: 8192);
            Assert.Equal(AppendStatus.Ok, result.Status);
            live.Expected.Add((result.Address, fill));
        }

        while (live.Expected.Count == 0 || live.Expected[^1].Address.ChunkNumber < 3)
        {
            await Append();
        }

        Assert.Equal(MarkDestagedStatus.Ok, log.MarkDestaged(old));
        log.WaitForReclaim();
        Assert.DoesNotContain(1L, log.GetChunkNumbers());

        // Spares are taken in the order they became ready (a zero-filled one may come first): go on until the writer
        // is in the recycled one, two 8 KiB records into it.
        for (var chunk = live.Expected[^1].Address.ChunkNumber + 1; chunk <= live.Expected[^1].Address.ChunkNumber + 3; chunk++)
        {
            while (live.Expected[^1].Address.ChunkNumber < chunk)
            {
                await Append();
            }

            await Append();
            Assert.Equal(chunk, live.Expected[^1].Address.ChunkNumber);
            var end = live.Expected[^1].Address.OffsetBytes + 8312 + 32;
            if (File.ReadAllBytes(_fixture.ChunkPath(chunk)).AsSpan(end).ContainsAnyExcept((byte)0))
            {
                return live with { Chunk = chunk };
            }
        }

        Assert.Fail("the recycled chunk was not reused with its old frames in it");
        return live;
    }

    private static void AssertSegment(SiloLog log, Guid segment, IReadOnlyList<(LogAddress Address, byte Fill)> expected)
    {
        var records = log.GetSegment(segment)!.Records.Where(r => r.Kind == LogRecordKind.Write).ToList();
        Assert.Equal(expected.Select(e => e.Address).OrderBy(a => (a.ChunkNumber, a.OffsetBytes)), records.Select(r => r.Address).OrderBy(a => (a.ChunkNumber, a.OffsetBytes)));
        foreach (var (address, fill) in expected)
        {
            Assert.Equal(fill, LogFixture.ReadFill(log, address));
        }
    }

    [Fact]
    public async Task Recovery_AfterFdatasyncFailure_RecoversEverythingCommittedBefore()
    {
        var addresses = new List<LogAddress>();
        using (var log = _fixture.Open())
        {
            for (ulong i = 1; i <= 3; i++)
            {
                addresses.Add((await LogFixture.AppendWrite(log, i, (byte)i)).Address);
            }

            using (_fixture.FileSystem.FailFlushes("*.log"))
            {
                await Assert.ThrowsAsync<StorageFaultException>(() => LogFixture.AppendWrite(log, 4, 4));
            }

            await Assert.ThrowsAsync<StorageFaultException>(() => LogFixture.AppendWrite(log, 5, 5));
        }

        using var reopened = _fixture.Open();
        var records = reopened.GetSegment(LogFixture.Segment)!.Records;
        Assert.True(records.Count >= 3);
        AssertRecords(reopened, addresses);
        Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(reopened, 6, 6)).Status);
    }

    private async Task<List<LogAddress>> WriteRecords(int count)
    {
        var addresses = new List<LogAddress>();
        using var log = _fixture.Open();
        for (var i = 1; i <= count; i++)
        {
            var result = await LogFixture.AppendWrite(log, (ulong)i, (byte)i);
            Assert.Equal(AppendStatus.Ok, result.Status);
            addresses.Add(result.Address);
        }

        return addresses;
    }

    private async Task AssertTruncatedAt(LogAddress tornAt, List<LogAddress> survivors)
    {
        using (var log = _fixture.Open())
        {
            Assert.Equal(tornAt, log.Recovery.TruncatedAt);
            Assert.Empty(log.Recovery.CorruptRegions);
            AssertRecords(log, survivors);
            var next = await LogFixture.AppendWrite(log, 10, 10);
            Assert.Equal(tornAt, next.Address);
        }

        using var again = _fixture.Open();
        Assert.True(again.Recovery.IsClean);
        Assert.Equal(survivors.Count + 1, again.Recovery.FrameCount);
    }

    private static void AssertRecords(SiloLog log, IReadOnlyList<LogAddress> addresses)
    {
        var records = log.GetSegment(LogFixture.Segment)!.Records;
        Assert.Equal(addresses, records.Take(addresses.Count).Select(r => r.Address));
        for (var i = 0; i < addresses.Count; i++)
        {
            Assert.Equal((byte)(i + 1), LogFixture.ReadFill(log, addresses[i]));
        }
    }

    private void Damage(LogAddress address, int offset, int length, byte value)
    {
        using var file = File.OpenHandle(_fixture.ChunkPath(address.ChunkNumber), FileMode.Open, FileAccess.ReadWrite);
        var bytes = new byte[length];
        bytes.AsSpan().Fill(value);
        RandomAccess.Write(file, bytes, address.OffsetBytes + offset);
    }
}
