using Converge.Grains.Io;
using Converge.Grains.Log;
using Converge.Log;
using Xunit;

namespace Converge.Tests.Log;

public sealed class SiloLogAppendTests : IDisposable
{
    private readonly LogFixture _fixture = new();

    public void Dispose() => _fixture.Dispose();

    [Fact]
    public async Task Append_ThenRead_ReturnsTheSameRecordBytes()
    {
        using var log = _fixture.Open();
        using var record = LogFixture.WriteRecord(1, 0x5A);
        var result = await log.AppendCommittedAsync(record.Memory);
        Assert.Equal(AppendStatus.Ok, result.Status);
        var buffer = new byte[record.LengthBytes];
        Assert.Equal(record.LengthBytes, log.ReadRecord(result.Address, buffer));
        Assert.True(buffer.AsSpan().SequenceEqual(record.Span));
        var segment = log.GetSegment(LogFixture.Segment)!;
        Assert.Equal(result.Address, Assert.Single(segment.Records).Address);
    }

    [Fact]
    public async Task LoneAppends_AnswerOnTheWriterThread_OnlyWhenTheCallerAllowsIt()
    {
        using var log = _fixture.Open();
        // On a pool thread, with no context to return to: wherever an append completes the await, the loop goes on.
        var onWriter = await Task.Run(() => CountAnswersOnWriterAsync(log));
        Assert.Equal(0, onWriter[0]);
        Assert.True(onWriter[1] > 10, $"{onWriter[1]} of 20 lone appends that allowed it answered on the writer thread");
    }

    private static async Task<int[]> CountAnswersOnWriterAsync(SiloLog log)
    {
        var onWriter = new int[2];
        for (var i = 0; i < 20; i++)
        {
            foreach (var allowed in new[] { false, true })
            {
                using var record = LogFixture.WriteRecord((ulong)((2 * i) + (allowed ? 2 : 1)), 1);
                var result = await log.AppendCommittedAsync(record.Memory, answerOnWriter: allowed);
                Assert.Equal(AppendStatus.Ok, result.Status);
                if (Thread.CurrentThread.Name == "converge-log-writer")
                {
                    onWriter[allowed ? 1 : 0]++;
                }
            }
        }

        return onWriter;
    }

    [Fact]
    public async Task Frame_GoldenBytes_AreFrozenOnDisk()
    {
        using (var log = _fixture.Open())
        {
            var header = LogRecordHeader.ForWrite(
                new Guid("00112233-4455-6677-8899-aabbccddeeff"), new Lsn(2, 5), new Guid("ffeeddcc-bbaa-9988-7766-554433221100"), 8192, 8);
            using var record = LogRecord.EncodePooled(header, "ABCDEFGH"u8);
            Assert.Equal(new LogAddress(1, 0), (await log.AppendCommittedAsync(record.Memory)).Address);
        }

        var onDisk = File.ReadAllBytes(_fixture.ChunkPath(1));
        var frameLength = 32 + 92 + 4; // header, record, padding to 8
        Assert.Equal(GoldenBytes.Frame, Convert.ToHexString(onDisk, 0, frameLength));
        Assert.False(onDisk.AsSpan(frameLength).ContainsAnyExcept((byte)0));
    }

    [Fact]
    public async Task ConcurrentAppends_AreGroupCommitted_WithFewerFlushesThanAppends()
    {
        using var log = _fixture.Open(LogFixture.SmallOptions(chunkSizeBytes: 4 * 1024 * 1024));
        // Hold the first commit so the other appends pile up behind it and must share the next flushes.
        var hold = _fixture.FileSystem.Hold("*.log");
        var first = LogFixture.AppendWrite(log, 0, 0);
        await LogFixture.Within(hold.Reached, "the first commit's fdatasync to block on the hold");
        const int Appends = 64;
        var rest = Enumerable.Range(1, Appends - 1).Select(i => LogFixture.AppendWrite(log, (ulong)i, (byte)i)).ToArray();
        hold.Release();
        var results = await LogFixture.Within(Task.WhenAll(rest.Prepend(first)), "all appends to commit");
        hold.Dispose();
        Assert.All(results, r => Assert.Equal(AppendStatus.Ok, r.Status));
        Assert.True(log.FlushCount < Appends / 2, $"{Appends} concurrent appends used {log.FlushCount} fdatasyncs");
        Assert.True(log.BatchCount <= 3, $"the piled-up appends should commit in the batch after the held one, saw {log.BatchCount} batches");
        for (var i = 0; i < Appends; i++)
        {
            Assert.Equal((byte)i, LogFixture.ReadFill(log, results[i].Address));
        }
    }

    [Fact]
    public async Task HeldFlush_KeepsAppendIncomplete_UntilReleased()
    {
        using var log = _fixture.Open();
        using var hold = _fixture.FileSystem.Hold("*.log");
        var append = LogFixture.AppendWrite(log, 1, 7);
        await LogFixture.Within(hold.Reached, "the commit's fdatasync to block on the hold");
        Assert.False(append.IsCompleted, "an append must not complete before its fdatasync returns");
        Assert.Empty(log.GetSegment(LogFixture.Segment)!.Records);
        hold.Release();
        var result = await LogFixture.Within(append, "the append to complete after the release");
        Assert.Equal(AppendStatus.Ok, result.Status);
    }

    [Fact]
    public async Task FailedFdatasync_FailsPendingAndLaterAppends_AndRestartRecoversEverythingCommitted()
    {
        var log = _fixture.Open();
        try
        {
            Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, 1, 1)).Status);
            var hold = _fixture.FileSystem.Hold("*.log");
            var held = LogFixture.AppendWrite(log, 2, 2);
            await LogFixture.Within(hold.Reached, "the second commit's fdatasync to block");
            var queued = LogFixture.AppendWrite(log, 3, 3);
            using (_fixture.FileSystem.FailFlushes("*.log"))
            {
                // The held fdatasync goes through; the next one (the queued append's batch) fails.
                hold.Dispose();
                Assert.Equal(AppendStatus.Ok, (await LogFixture.Within(held, "the held append to commit")).Status);
                var fault = await Assert.ThrowsAsync<StorageFaultException>(() => LogFixture.Within(queued, "the queued append to fail"));
                Assert.Equal(FaultyFileSystem.Eio, fault.Errno);
            }

            Assert.True(log.IsPoisoned);
            await Assert.ThrowsAsync<StorageFaultException>(() => LogFixture.AppendWrite(log, 4, 4));
            var committed = log.GetSegment(LogFixture.Segment)!.Records;
            Assert.Equal([1UL, 2UL], committed.Select(e => e.Lsn.Sequence));
        }
        finally
        {
            log.Dispose();
        }

        using var reopened = _fixture.Open();
        var recovered = reopened.GetSegment(LogFixture.Segment)!.Records;
        Assert.True(recovered.Count >= 2, "both committed records survive the restart");
        Assert.Equal(1, LogFixture.ReadFill(reopened, recovered[0].Address));
        Assert.Equal(2, LogFixture.ReadFill(reopened, recovered[1].Address));
        Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(reopened, 5, 5)).Status);
    }

    [Fact]
    public async Task FailedFdatasync_OnTheOnlyPendingAppend_ThrowsAndTheRecordIsNotIndexed()
    {
        using var log = _fixture.Open();
        using (_fixture.FileSystem.FailFlushes("*.log", FaultyFileSystem.Eio, times: 1))
        {
            var fault = await Assert.ThrowsAsync<StorageFaultException>(() => LogFixture.AppendWrite(log, 1, 1));
            Assert.Equal(FaultyFileSystem.Eio, fault.Errno);
        }

        Assert.Empty(log.GetSegment(LogFixture.Segment)!.Records);
        await Assert.ThrowsAsync<StorageFaultException>(() => LogFixture.AppendWrite(log, 2, 2));
    }

    [Fact]
    public async Task FailedWrite_WithEnospc_PoisonsTheLog()
    {
        using var log = _fixture.Open();
        using (_fixture.FileSystem.FailWrites("*.log", FaultyFileSystem.Enospc, times: 1))
        {
            var fault = await Assert.ThrowsAsync<StorageFaultException>(() => LogFixture.AppendWrite(log, 1, 1));
            Assert.Equal(FaultyFileSystem.Enospc, fault.Errno);
        }

        await Assert.ThrowsAsync<StorageFaultException>(() => LogFixture.AppendWrite(log, 2, 2));
    }

    [Fact]
    public async Task AppendBeyondNvramBudget_WaitsThenReturnsNvramFull_AndIsAdmittedAfterDestage()
    {
        var options = new SiloLogOptions
        {
            ChunkSizeBytes = 64 * 1024,
            MaxRecordBytes = 4096 + LogRecord.OverheadBytes,
            NvramBudgetBytes = (3 * LogFixtureFrameBytes) + 256, // three writes and a seal
            AdmissionTimeout = TimeSpan.FromMilliseconds(300),
        };
        using var log = _fixture.Open(options);
        for (ulong i = 1; i <= 3; i++)
        {
            Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, i, (byte)i)).Status);
        }

        Assert.Equal(AppendStatus.Ok, (await log.SealAsync(LogFixture.Segment, LogFixture.Volume, 1)).Status);
        var started = DateTime.UtcNow;
        var full = await LogFixture.AppendWrite(log, 1, 4, segment: Guid.NewGuid());
        Assert.Equal(AppendStatus.NvramFull, full.Status);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(250), "NvramFull comes only after the admission wait");

        var waiting = LogFixture.AppendWrite(log, 1, 9, segment: Guid.NewGuid());
        Assert.False(waiting.IsCompleted, "the append waits for budget");
        Assert.Equal(MarkDestagedStatus.Ok, log.MarkDestaged(LogFixture.Segment));
        Assert.Equal(AppendStatus.Ok, (await LogFixture.Within(waiting, "the waiting append to be admitted after destage")).Status);
    }

    private const int LogFixtureFrameBytes = 32 + 84 + 4096 + 4;

    [Fact]
    public async Task Fence_RefusesOlderEpochs_WithAValueNotAnException()
    {
        using var log = _fixture.Open();
        Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, 1, 1, epoch: 1)).Status);
        Assert.Equal(AppendStatus.Ok, (await log.FenceAsync(LogFixture.Volume, 2)).Status);
        Assert.Equal(AppendStatus.Fenced, (await LogFixture.AppendWrite(log, 2, 2, epoch: 1)).Status);
        Assert.Equal(AppendStatus.Fenced, (await LogFixture.AppendWrite(log, 2, 2, segment: Guid.NewGuid(), epoch: 1)).Status);
        Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, 1, 3, segment: Guid.NewGuid(), epoch: 2)).Status);
        Assert.Equal(AppendStatus.Fenced, (await log.FenceAsync(LogFixture.Volume, 1)).Status);
        Assert.Equal(2UL, log.GetFenceEpoch(LogFixture.Volume));
    }

    [Fact]
    public async Task SealAdmittedWhileARecordCommits_CountsOnlyOnceCommitted_SoADestageCannotMissTheRecord()
    {
        using var log = _fixture.Open();
        using var hold = _fixture.FileSystem.Hold("*.log");
        var append = LogFixture.AppendWrite(log, 1, 7);
        await LogFixture.Within(hold.Reached, "the record's fdatasync to block on the hold");
        var seal = log.SealAsync(LogFixture.Segment, LogFixture.Volume, 1).AsTask();

        // The seal is admitted (later appends are refused), but the record before it is not committed yet: a destage
        // that read the segment now would find it empty and release the record unapplied.
        Assert.Equal(AppendStatus.Sealed, (await LogFixture.AppendWrite(log, 2, 2)).Status);
        Assert.False(log.GetSegment(LogFixture.Segment)!.IsSealed, "a segment must not count as sealed before its seal commits");
        Assert.Equal(MarkDestagedStatus.NotSealed, log.MarkDestaged(LogFixture.Segment));

        hold.Release();
        Assert.Equal(AppendStatus.Ok, (await LogFixture.Within(append, "the record to commit")).Status);
        Assert.Equal(AppendStatus.Ok, (await LogFixture.Within(seal, "the seal to commit")).Status);
        var info = log.GetSegment(LogFixture.Segment)!;
        Assert.True(info.IsSealed);
        Assert.Contains(info.Records, r => r.Kind == LogRecordKind.Write && r.Lsn == new Lsn(1, 1));
        Assert.Equal(MarkDestagedStatus.Ok, log.MarkDestaged(LogFixture.Segment));
    }

    [Fact]
    public async Task Seal_RefusesLaterAppendsToTheSegment_AndBadRecordsAreInvalid()
    {
        using var log = _fixture.Open();
        Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, 1, 1)).Status);
        Assert.Equal(AppendStatus.Ok, (await log.SealAsync(LogFixture.Segment, LogFixture.Volume, 1)).Status);
        Assert.Equal(AppendStatus.Sealed, (await LogFixture.AppendWrite(log, 2, 2)).Status);
        Assert.True(log.GetSegment(LogFixture.Segment)!.IsSealed);

        using var record = LogFixture.WriteRecord(3, 3, segment: Guid.NewGuid());
        var corrupt = record.Span.ToArray();
        corrupt[100] ^= 1;
        Assert.Equal(AppendStatus.Invalid, (await log.AppendCommittedAsync(corrupt)).Status);
        Assert.Equal(AppendStatus.Invalid, (await LogFixture.AppendWrite(log, 4, 4, segment: LogFixture.Segment, volume: Guid.NewGuid())).Status);
    }

    [Fact]
    public async Task MemoryMode_CommitsWithoutFdatasync()
    {
        var options = new SiloLogOptions { ChunkSizeBytes = 64 * 1024, MaxRecordBytes = 16 * 1024, NvramBudgetBytes = 1 << 20, Durability = LogDurability.Memory };
        using var log = _fixture.Open(options);
        var flushesAfterOpen = _fixture.FileSystem.FlushCount;
        Assert.Equal(AppendStatus.Ok, (await LogFixture.AppendWrite(log, 1, 1)).Status);
        Assert.Equal(flushesAfterOpen, _fixture.FileSystem.FlushCount);
        Assert.Equal(0, log.FlushCount);
    }
}
