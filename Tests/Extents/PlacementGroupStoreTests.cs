using Converge.Grains.Extents;
using Converge.Grains.Io;
using Converge.Storage;
using Xunit;
using static Converge.Tests.Extents.ExtentTestData;

namespace Converge.Tests.Extents;

public sealed class PlacementGroupStoreTests : IDisposable
{
    // Small extents (64 blocks), 4 groups; group 1 holds extents 1, 5, 9, ... i.e. blocks 64..127, 320..383, ...
    private const int Group = 1;
    private static readonly Guid VolumeId = Guid.Parse("0b7e1f3a-5c1d-4a8e-9f00-2d6c8e4b1a01");
    private readonly TempDataDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private PlacementGroupStore Open(IStorageFileSystem? fileSystem = null, int maxCachedExtents = 16) =>
        PlacementGroupStore.Open(fileSystem ?? PosixFileSystem.Instance, _dir.Path, VolumeId, Group, SmallOptions(maxCachedExtents));

    [Fact]
    public async Task Apply_ThenRead_ReturnsTheBytesAndLsnsWritten()
    {
        using var store = Open();
        var result = await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1), blocks: 3), Data(VolumeId, 330, new Lsn(1, 2))]);
        Assert.Equal(new ApplyResult(4, 0), result);

        var (bytes, results, summary) = Read(store, 64, 4);
        Assert.Equal(new ReadSummary(3, 1, 0), summary);
        Assert.Equal(BlockFor(64, new Lsn(1, 1), 3), bytes[..(3 * BlockSizeBytes)]);
        Assert.All(results[..3], r => Assert.Equal(new BlockReadResult(new Lsn(1, 1), BlockState.Data), r));
        Assert.Equal(new BlockReadResult(Lsn.None, BlockState.Unwritten), results[3]);
        Assert.Equal(BlockFor(330, new Lsn(1, 2)), Read(store, 330, 1).Bytes);
        Assert.Equal(new Lsn(1, 1), store.GetHighWaterLsn(1));
        Assert.Equal(new Lsn(1, 2), store.GetHighWaterLsn(5));
        Assert.Equal(Lsn.None, store.GetHighWaterLsn(9));
    }

    [Fact]
    public async Task EqualLsn_IsADuplicate_AndOlderLsnIsSkipped()
    {
        using var store = Open();
        await store.ApplyAsync([Data(VolumeId, 70, new Lsn(2, 5))]);

        var duplicate = ExtentWrite.Data(VolumeId, 70, new Lsn(2, 5), BlockFor(70, new Lsn(9, 9)), BlockSizeBytes);
        Assert.Equal(new ApplyResult(0, 1), await store.ApplyAsync([duplicate]));
        Assert.Equal(new ApplyResult(0, 1), await store.ApplyAsync([Data(VolumeId, 70, new Lsn(1, 99))]));
        Assert.Equal(new ApplyResult(0, 1), await store.ApplyAsync([ExtentWrite.Zero(VolumeId, 70, 1, new Lsn(2, 4))]));

        var (bytes, results, _) = Read(store, 70, 1);
        Assert.Equal(BlockFor(70, new Lsn(2, 5)), bytes);
        Assert.Equal(new Lsn(2, 5), results[0].Lsn);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(42)]
    [InlineData(20261127)]
    public async Task HigherLsnWins_RegardlessOfApplyOrder_AndSurvivesReopen(int seed)
    {
        var random = new Random(seed);
        long[] extents = [1, 5, 9, 13];
        var model = new Dictionary<long, (Lsn Lsn, BlockState State)>();
        var records = new List<ExtentWrite>();
        for (var i = 0; i < 400; i++)
        {
            var extent = extents[random.Next(extents.Length)];
            var blocks = random.Next(1, 5);
            var first = extent * 64 + random.Next(0, 64 - blocks + 1);
            var lsn = new Lsn((uint)random.Next(1, 4), (ulong)(i + 1));
            var zero = random.Next(5) == 0;
            records.Add(zero ? ExtentWrite.Zero(VolumeId, first, blocks, lsn) : Data(VolumeId, first, lsn, blocks));
            for (var b = first; b < first + blocks; b++)
            {
                if (!model.TryGetValue(b, out var current) || lsn > current.Lsn)
                {
                    model[b] = (lsn, zero ? BlockState.Zero : BlockState.Data);
                }
            }
        }

        // Shuffled, in random batch sizes, and every record applied twice: order and repetition must not matter.
        var shuffled = records.Concat(records).OrderBy(_ => random.Next()).ToList();
        using (var store = Open(maxCachedExtents: 2))
        {
            for (var at = 0; at < shuffled.Count;)
            {
                var take = Math.Min(random.Next(1, 40), shuffled.Count - at);
                await store.ApplyAsync(shuffled.GetRange(at, take));
                at += take;
            }

            CheckAgainstModel(store, extents, model, seed);
        }

        using var reopened = Open(maxCachedExtents: 2);
        CheckAgainstModel(reopened, extents, model, seed);
        Assert.True(reopened.Verify(includeData: true).IsClean, $"seed {seed}: verify after reopen");
    }

    private static void CheckAgainstModel(PlacementGroupStore store, long[] extents, Dictionary<long, (Lsn Lsn, BlockState State)> model, int seed)
    {
        foreach (var extent in extents)
        {
            var (bytes, results, summary) = Read(store, extent * 64, 64);
            Assert.True(summary.CorruptBlocks == 0, $"seed {seed}: extent {extent} has corrupt blocks");
            var highWater = Lsn.None;
            for (var b = 0; b < 64; b++)
            {
                var blockIndex = extent * 64 + b;
                var expected = model.TryGetValue(blockIndex, out var m) ? m : (Lsn.None, BlockState.Unwritten);
                highWater = Lsn.Max(highWater, expected.Item1);
                Assert.True(new BlockReadResult(expected.Item1, expected.Item2) == results[b], $"seed {seed}: block {blockIndex} is {results[b]}, model says {expected}");
                var block = bytes.AsSpan(b * BlockSizeBytes, BlockSizeBytes);
                var expectedBytes = expected.Item2 == BlockState.Data ? BlockFor(blockIndex, expected.Item1) : new byte[BlockSizeBytes];
                Assert.True(block.SequenceEqual(expectedBytes), $"seed {seed}: block {blockIndex} bytes differ from LSN {expected.Item1}");
            }

            Assert.True(highWater == store.GetHighWaterLsn(extent), $"seed {seed}: high water of extent {extent}");
        }
    }

    [Fact]
    public async Task ZeroTombstone_ReadsAsZeros_AndShowsAsZeroInAllocation()
    {
        using var store = Open();
        await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1), blocks: 8)]);
        Assert.Equal(new ApplyResult(4, 0), await store.ApplyAsync([ExtentWrite.Zero(VolumeId, 66, 4, new Lsn(1, 2))]));

        var (bytes, results, summary) = Read(store, 64, 8);
        Assert.Equal(new ReadSummary(4, 4, 0), summary);
        Assert.True(bytes.AsSpan(2 * BlockSizeBytes, 4 * BlockSizeBytes).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(new BlockReadResult(new Lsn(1, 2), BlockState.Zero), results[3]);

        var runs = store.GetAllocation(64, 64);
        Assert.Equal(
            [new AllocationRun(64, 2, BlockState.Data), new AllocationRun(66, 4, BlockState.Zero), new AllocationRun(70, 2, BlockState.Data), new AllocationRun(72, 56, BlockState.Unwritten)],
            runs);
        Assert.False(runs[1].IsAllocated);
    }

    [Fact]
    public async Task ThinReads_OfUnwrittenAndZeroBlocks_DoNoDataRead()
    {
        var fileSystem = new FaultyTestFileSystem(PosixFileSystem.Instance);
        using var store = Open(fileSystem);
        await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1)), ExtentWrite.Zero(VolumeId, 65, 3, new Lsn(1, 2))]);

        var before = fileSystem.DataReads;
        var (_, _, summary) = Read(store, 65, 63);
        Assert.Equal(new ReadSummary(0, 63, 0), summary);
        Read(store, 320, 64);
        Assert.Equal(before, fileSystem.DataReads);

        Read(store, 64, 1);
        Assert.True(fileSystem.DataReads > before, "a data block is read from the data file");
    }

    [Fact]
    public async Task BitFlipInDataFile_IsReportedCorrupt_AndNeverReturned()
    {
        using (var store = Open())
        {
            await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1), blocks: 3)]);
        }

        var dataPath = Path.Combine(PlacementGroupStore.GroupDirectory(_dir.Path, VolumeId, Group), PlacementGroupStore.ExtentFileStem(0, 1) + ".data");
        using (var file = new FileStream(dataPath, FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = BlockSizeBytes + 100;
            var b = file.ReadByte();
            file.Position = BlockSizeBytes + 100;
            file.WriteByte((byte)(b ^ 0x01));
        }

        using var reopened = Open();
        var (bytes, results, summary) = Read(reopened, 64, 3);
        Assert.Equal(new ReadSummary(2, 0, 1), summary);
        Assert.Equal(new BlockReadResult(new Lsn(1, 1), BlockState.Corrupt), results[1]);
        Assert.True(bytes.AsSpan(BlockSizeBytes, BlockSizeBytes).IndexOfAnyExcept((byte)0) < 0, "a corrupt block's bytes are never handed out");
        Assert.Equal(BlockFor(66, new Lsn(1, 1)), bytes[(2 * BlockSizeBytes)..]);

        var report = reopened.Verify(includeData: true);
        Assert.Equal([65L], report.CorruptBlocks);

        // Repair: a newer record (or the replica's copy) overwrites it.
        await reopened.ApplyAsync([Data(VolumeId, 65, new Lsn(1, 2))]);
        Assert.Equal(BlockFor(65, new Lsn(1, 2)), Read(reopened, 65, 1).Bytes);
    }

    [Fact]
    public async Task BitFlipOnTheReadPath_IsReportedCorrupt()
    {
        var fileSystem = new FaultyTestFileSystem(PosixFileSystem.Instance);
        using var store = Open(fileSystem);
        await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1))]);
        fileSystem.FlipBitOnDataRead = true;

        var (bytes, results, _) = Read(store, 64, 1);
        Assert.Equal(BlockState.Corrupt, results[0].State);
        Assert.True(bytes.AsSpan().IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public async Task FailedFdatasync_ThrowsStorageFault_AndTheStoreRefusesFurtherWrites()
    {
        var fileSystem = new FaultyTestFileSystem(PosixFileSystem.Instance);
        using (var store = Open(fileSystem))
        {
            await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1))]);
            fileSystem.FailFlush = true;
            await Assert.ThrowsAsync<StorageFaultException>(() => store.ApplyAsync([Data(VolumeId, 65, new Lsn(1, 2))]));
            fileSystem.FailFlush = false;

            Assert.True(store.IsFailed);
            await Assert.ThrowsAsync<StorageFaultException>(() => store.ApplyAsync([Data(VolumeId, 66, new Lsn(1, 3))]));
            await Assert.ThrowsAsync<StorageFaultException>(() => store.ImportExtentAsync(new MemoryStream(new byte[64])));
        }

        // Reopened, what was durable before the fault is intact.
        using var reopened = Open();
        Assert.Equal(BlockFor(64, new Lsn(1, 1)), Read(reopened, 64, 1).Bytes);
        Assert.NotEqual(BlockState.Corrupt, Read(reopened, 66, 1).Results[0].State);
    }

    [Fact]
    public async Task BadRecord_IsRejected_AndChangesNothing()
    {
        using var store = Open();
        ExtentWrite[][] bad =
        [
            [Data(VolumeId, 64, new Lsn(1, 1)), Data(Guid.NewGuid(), 65, new Lsn(1, 2))],
            [Data(VolumeId, 64, new Lsn(1, 1)), Data(VolumeId, 0, new Lsn(1, 2))],
            [Data(VolumeId, 64, new Lsn(1, 1)), Data(VolumeId, 126, new Lsn(1, 2), blocks: 3)],
            [Data(VolumeId, 64, new Lsn(1, 1)), Data(VolumeId, 65, Lsn.None)],
            [Data(VolumeId, 64, new Lsn(1, 1)), new ExtentWrite(VolumeId, 65, 2, new Lsn(1, 2), ExtentWriteKind.Data, new byte[BlockSizeBytes])],
            [Data(VolumeId, 64, new Lsn(1, 1)), new ExtentWrite(VolumeId, 65, 1, new Lsn(1, 2), ExtentWriteKind.Zero, new byte[1])],
        ];
        foreach (var batch in bad)
        {
            await Assert.ThrowsAnyAsync<ArgumentException>(() => store.ApplyAsync(batch));
        }

        Assert.Equal(BlockState.Unwritten, Read(store, 64, 1).Results[0].State);
        Assert.False(store.IsFailed);
        Assert.Throws<ArgumentOutOfRangeException>(() => Read(store, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Read(store, 120, 10));
    }

    [Fact]
    public async Task Restart_KeepsEverything_WithMoreExtentsThanTheCacheHolds()
    {
        var writes = new List<ExtentWrite>();
        for (long extent = 1; extent < 200; extent += 4)
        {
            writes.Add(Data(VolumeId, extent * 64 + extent % 64, new Lsn(3, (ulong)extent)));
            writes.Add(ExtentWrite.Zero(VolumeId, extent * 64 + 63, 1, new Lsn(3, 1000 + (ulong)extent)));
        }

        using (var store = Open(maxCachedExtents: 4))
        {
            Assert.Equal(new ApplyResult(writes.Count, 0), await store.ApplyAsync(writes));
        }

        using var reopened = Open(maxCachedExtents: 4);
        var report = reopened.Verify(includeData: true);
        Assert.Equal(50, report.ExtentsChecked);
        Assert.True(report.IsClean);
        for (long extent = 1; extent < 200; extent += 4)
        {
            var lsn = new Lsn(3, (ulong)extent);
            Assert.Equal(BlockFor(extent * 64 + extent % 64, lsn), Read(reopened, extent * 64 + extent % 64, 1).Bytes);
            Assert.Equal(BlockState.Zero, Read(reopened, extent * 64 + 63, 1).Results[0].State);
            Assert.Equal(new Lsn(3, 1000 + (ulong)extent), reopened.GetHighWaterLsn(extent));
        }
    }

    [Fact]
    public async Task Delete_RemovesTheGroupsFiles_AndClosesTheStore()
    {
        var store = Open();
        await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1))]);
        Assert.Throws<ArgumentException>(() => store.Delete(Guid.NewGuid()));

        store.Delete(VolumeId);
        Assert.False(Directory.Exists(PlacementGroupStore.GroupDirectory(_dir.Path, VolumeId, Group)));
        Assert.False(Directory.Exists(Path.Combine(_dir.Path, "extents", VolumeId.ToString("D"))));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 2))]));

        using var fresh = Open();
        Assert.Equal(BlockState.Unwritten, Read(fresh, 64, 1).Results[0].State);
    }

    [Fact]
    public async Task ReadsDuringApplies_AlwaysSeeAConsistentVersion_NeverCorrupt()
    {
        using var store = Open(maxCachedExtents: 2);
        using var done = new CancellationTokenSource();
        var reader = Task.Run(() =>
        {
            var reads = 0;
            while (!done.IsCancellationRequested && reads < 100_000)
            {
                foreach (var extent in new long[] { 1, 5, 9 })
                {
                    var (bytes, results, summary) = Read(store, extent * 64, 64);
                    Assert.Equal(0, summary.CorruptBlocks);
                    for (var b = 0; b < 64; b++)
                    {
                        if (results[b].State == BlockState.Data)
                        {
                            Assert.True(bytes.AsSpan(b * BlockSizeBytes, BlockSizeBytes).SequenceEqual(BlockFor(extent * 64 + b, results[b].Lsn)),
                                $"block {extent * 64 + b} bytes are not those of LSN {results[b].Lsn}");
                        }
                    }
                }

                reads++;
            }

            return reads;
        });

        var random = new Random(5);
        for (var i = 1; i <= 60; i++)
        {
            var batch = new List<ExtentWrite>();
            for (var r = 0; r < 8; r++)
            {
                var extent = new long[] { 1, 5, 9 }[random.Next(3)];
                batch.Add(Data(VolumeId, extent * 64 + random.Next(60), new Lsn(1, (ulong)(i * 10 + r)), blocks: 4));
            }

            await store.ApplyAsync(batch);
        }

        done.Cancel();
        Assert.True(await reader.WaitAsync(TimeSpan.FromSeconds(30)) > 0, "the reader finished at least one pass");
    }
}
