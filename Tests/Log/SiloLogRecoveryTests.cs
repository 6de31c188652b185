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
