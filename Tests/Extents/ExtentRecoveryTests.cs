using Converge.Grains.Extents;
using Converge.Grains.Io;
using Converge.Storage;
using Xunit;
using static Converge.Tests.Extents.ExtentTestData;

namespace Converge.Tests.Extents;

/// <summary>Recovery cases of the metadata file and whole-extent transfer, one test per case.</summary>
public sealed class ExtentRecoveryTests : IDisposable
{
    private const int Group = 1;
    private static readonly Guid VolumeId = Guid.Parse("6f1d2c3b-4a59-4e87-b6a5-0c1d2e3f4a02");
    private readonly TempDataDirectory _dir = new();
    private readonly TempDataDirectory _replicaDir = new();

    public void Dispose()
    {
        _dir.Dispose();
        _replicaDir.Dispose();
    }

    private PlacementGroupStore Open(TempDataDirectory? dir = null) =>
        PlacementGroupStore.Open(PosixFileSystem.Instance, (dir ?? _dir).Path, VolumeId, Group, SmallOptions());

    private string MetaPath => Path.Combine(PlacementGroupStore.GroupDirectory(_dir.Path, VolumeId, Group), PlacementGroupStore.ExtentFileStem(0, 1) + ".meta");

    private static int SlotSizeBytes => 4096;

    /// <summary>Two durable batches: generation 1 (slot 1) then generation 2 (slot 0).</summary>
    private async Task WriteTwoGenerationsAsync()
    {
        using var store = Open();
        await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1)), Data(VolumeId, 65, new Lsn(1, 2))]);
        await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 3)), Data(VolumeId, 66, new Lsn(1, 4))]);
    }

    private void Scribble(long offsetBytes, int lengthBytes, bool zeros = false)
    {
        using var file = new FileStream(MetaPath, FileMode.Open, FileAccess.ReadWrite);
        file.Position = offsetBytes;
        var garbage = new byte[lengthBytes];
        if (!zeros)
        {
            new Random(7).NextBytes(garbage);
        }

        file.Write(garbage);
    }

    [Fact]
    public async Task TornNewestSlot_FallsBackToTheOlderGeneration_AndFlagsTheMismatchedBlock()
    {
        await WriteTwoGenerationsAsync();

        // The generation-2 write tore: only its first sector reached the disk, the rest of slot 0 is as before (zeros).
        Scribble(512, SlotSizeBytes - 512, zeros: true);

        using var store = Open();
        var report = store.Verify(includeData: true);
        Assert.Equal([1L], report.SuspectExtents);
        Assert.Empty(report.CorruptExtents);
        Assert.Equal([64L], report.CorruptBlocks);

        var (bytes, results, _) = Read(store, 64, 3);
        Assert.Equal(new BlockReadResult(new Lsn(1, 1), BlockState.Corrupt), results[0]);
        Assert.True(bytes.AsSpan(0, BlockSizeBytes).IndexOfAnyExcept((byte)0) < 0, "neither the old nor the new bytes are passed off as the other");
        Assert.Equal(new BlockReadResult(new Lsn(1, 2), BlockState.Data), results[1]);
        Assert.Equal(new BlockReadResult(Lsn.None, BlockState.Unwritten), results[2]);

        // The records are still in the log (the batch never completed): destaging them again heals the extent.
        Assert.Equal(new ApplyResult(2, 0), await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 3)), Data(VolumeId, 66, new Lsn(1, 4))]));
        Assert.Equal(BlockFor(64, new Lsn(1, 3)), Read(store, 64, 1).Bytes);
        Assert.Equal(BlockFor(66, new Lsn(1, 4)), Read(store, 66, 1).Bytes);
    }

    [Fact]
    public async Task TornFirstSlotWrite_LeavesAnEmptyExtent()
    {
        using (var store = Open())
        {
            await store.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1))]);
        }

        // Generation 1 lives in slot 1; tear it and there was never a durable generation.
        Scribble(SlotSizeBytes + 64, 512);
        using var reopened = Open();
        Assert.Equal([1L], reopened.Verify(includeData: false).SuspectExtents);
        Assert.Equal(BlockState.Unwritten, Read(reopened, 64, 1).Results[0].State);
    }

    [Fact]
    public async Task BothSlotsBad_MakesTheExtentCorrupt_UntilImportedFromAReplica()
    {
        await WriteTwoGenerationsAsync();
        using (var replica = Open(_replicaDir))
        {
            await replica.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 3)), Data(VolumeId, 65, new Lsn(1, 2)), Data(VolumeId, 66, new Lsn(1, 4))]);
        }

        Scribble(100, 200);
        Scribble(SlotSizeBytes + 100, 200);
        using var store = Open();
        Assert.Equal([1L], store.Verify(includeData: true).CorruptExtents);

        var (bytes, results, summary) = Read(store, 64, 64);
        Assert.Equal(64, summary.CorruptBlocks);
        Assert.All(results, r => Assert.Equal(BlockState.Corrupt, r.State));
        Assert.True(bytes.AsSpan().IndexOfAnyExcept((byte)0) < 0);
        Assert.Throws<ExtentCorruptException>(() => store.GetHighWaterLsn(1));
        await Assert.ThrowsAsync<ExtentCorruptException>(() => store.ApplyAsync([Data(VolumeId, 67, new Lsn(1, 5)), Data(VolumeId, 320, new Lsn(1, 6))]));
        Assert.Equal(BlockFor(320, new Lsn(1, 6)), Read(store, 320, 1).Bytes);

        // A replica with a bad block of its own cannot rebuild the extent: the import changes nothing.
        var replicaData = Path.Combine(PlacementGroupStore.GroupDirectory(_replicaDir.Path, VolumeId, Group), PlacementGroupStore.ExtentFileStem(0, 1) + ".data");
        var original = await File.ReadAllBytesAsync(replicaData);
        var damaged = (byte[])original.Clone();
        damaged[BlockSizeBytes + 9] ^= 0x08;
        await File.WriteAllBytesAsync(replicaData, damaged);
        using (var partial = new MemoryStream())
        {
            using (var replica = Open(_replicaDir))
            {
                Assert.Equal(new TransferResult(2, 0, 1), await replica.ExportExtentAsync(1, partial));
            }

            partial.Position = 0;
            await Assert.ThrowsAsync<InvalidDataException>(() => store.ImportExtentAsync(partial));
            Assert.Equal(BlockState.Corrupt, Read(store, 64, 1).Results[0].State);
        }

        await File.WriteAllBytesAsync(replicaData, original);
        using var export = new MemoryStream();
        using (var replica = Open(_replicaDir))
        {
            await replica.ExportExtentAsync(1, export);
        }

        export.Position = 0;
        Assert.Equal(new TransferResult(3, 0, 0), await store.ImportExtentAsync(export));
        Assert.Equal(new Lsn(1, 4), store.GetHighWaterLsn(1));
        Assert.Equal(BlockFor(65, new Lsn(1, 2)), Read(store, 65, 1).Bytes);
        Assert.True(store.Verify(includeData: true).CorruptExtents.Count == 0);
    }

    [Fact]
    public async Task ExportImport_RoundTrip_PreservesDataLsnsAndTombstones_AndIsIdempotent()
    {
        using var source = Open();
        await source.ApplyAsync([Data(VolumeId, 64, new Lsn(2, 10), blocks: 5), ExtentWrite.Zero(VolumeId, 66, 2, new Lsn(2, 11)), Data(VolumeId, 127, new Lsn(3, 1))]);
        using var export = new MemoryStream();
        Assert.Equal(new TransferResult(6, 0, 0), await source.ExportExtentAsync(1, export));

        using var target = Open(_replicaDir);
        await target.ApplyAsync([Data(VolumeId, 64, new Lsn(4, 1))]);
        export.Position = 0;
        Assert.Equal(new TransferResult(5, 1, 0), await target.ImportExtentAsync(export));
        export.Position = 0;
        Assert.Equal(new TransferResult(0, 6, 0), await target.ImportExtentAsync(export));

        var (expectedBytes, expectedResults, _) = Read(source, 64, 64);
        var (bytes, results, _) = Read(target, 64, 64);
        Assert.Equal(new BlockReadResult(new Lsn(4, 1), BlockState.Data), results[0]);
        Assert.Equal(BlockFor(64, new Lsn(4, 1)), bytes[..BlockSizeBytes]);
        Assert.Equal(expectedResults[1..], results[1..]);
        Assert.Equal(expectedBytes[BlockSizeBytes..], bytes[BlockSizeBytes..]);
        Assert.Equal(new Lsn(4, 1), target.GetHighWaterLsn(1));
    }

    [Fact]
    public async Task Import_RejectsAForeignOrDamagedStream()
    {
        using var source = Open();
        await source.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1))]);
        using var export = new MemoryStream();
        await source.ExportExtentAsync(1, export);
        var good = export.ToArray();

        var damaged = (byte[])good.Clone();
        damaged[PlacementGroupStore.ExportHeaderSizeBytes + PlacementGroupStore.ExportRecordHeaderSizeBytes + 10] ^= 0x40;
        using var target = Open(_replicaDir);
        await Assert.ThrowsAsync<InvalidDataException>(() => target.ImportExtentAsync(new MemoryStream(damaged)));
        await Assert.ThrowsAsync<InvalidDataException>(() => target.ImportExtentAsync(new MemoryStream(good[..^40])));

        using var other = PlacementGroupStore.Open(PosixFileSystem.Instance, _replicaDir.Path, Guid.NewGuid(), Group, SmallOptions());
        await Assert.ThrowsAsync<InvalidDataException>(() => other.ImportExtentAsync(new MemoryStream(good)));
        Assert.Equal(BlockState.Unwritten, Read(target, 64, 1).Results[0].State);
    }

    [Fact]
    public async Task CopyExtentTo_SkipsCorruptSourceBlocks_AndKeepsNewerTargetBlocks()
    {
        using var source = Open();
        using var target = Open(_replicaDir);
        await source.ApplyAsync([Data(VolumeId, 64, new Lsn(1, 1), blocks: 3)]);
        await target.ApplyAsync([Data(VolumeId, 66, new Lsn(2, 1))]);

        var dataPath = Path.Combine(PlacementGroupStore.GroupDirectory(_dir.Path, VolumeId, Group), PlacementGroupStore.ExtentFileStem(0, 1) + ".data");
        using (var file = new FileStream(dataPath, FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = BlockSizeBytes + 1;
            file.WriteByte(0x5A);
            file.WriteByte(0xA5);
        }

        Assert.Equal(new TransferResult(1, 1, 1), await source.CopyExtentToAsync(1, target));
        var (_, results, _) = Read(target, 64, 3);
        Assert.Equal([new(new Lsn(1, 1), BlockState.Data), new(Lsn.None, BlockState.Unwritten), new(new Lsn(2, 1), BlockState.Data)], results);
    }
}
