using System.Buffers.Binary;
using Converge.Grains.Extents;
using Converge.Grains.Io;
using Converge.Storage;
using Xunit;
using Crc32C = Converge.Log.Crc32C;

namespace Converge.Tests.Extents;

/// <summary>
/// Freezes the on-disk extent format (docs/extent-format.md) and the numbers it stores. A failure here means a format
/// change: bump the format version and write a migration, never just update the expected values.
/// </summary>
public sealed class ExtentFormatGoldenTests : IDisposable
{
    // Checksums of the whole slot and the whole export stream in the tests below, taken when the format was fixed.
    private const uint GoldenSlotCrc = 0xD6728460;
    private const uint GoldenExportCrc = 0x1392DA31;

    private static readonly Guid VolumeId = Guid.Parse("11111111-2222-3333-4444-555555555555");
    private readonly TempDataDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Crc32C_MatchesTheCastagnoliCheckValue()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal(Crc32C.Compute("123456789"u8), Crc32C.Append(Crc32C.Compute("1234"u8), "56789"u8));
        Assert.Equal(0u, Crc32C.Compute([]));
    }

    [Fact]
    public void StoredEnumValues_AreFrozen()
    {
        Assert.Equal(0, (int)BlockState.Unwritten);
        Assert.Equal(1, (int)BlockState.Data);
        Assert.Equal(2, (int)BlockState.Zero);
        Assert.Equal(3, (int)BlockState.Corrupt);
        Assert.Equal(1, (int)ExtentWriteKind.Data);
        Assert.Equal(2, (int)ExtentWriteKind.Zero);
    }

    [Fact]
    public void Lsn_OrdersByEpochThenSequence()
    {
        Assert.True(new Lsn(2, 0) > new Lsn(1, ulong.MaxValue));
        Assert.True(new Lsn(1, 2) > new Lsn(1, 1));
        Assert.True(Lsn.None < new Lsn(0, 1));
        Assert.Equal(new Lsn(3, 4), new Lsn(3, 4));
    }

    [Fact]
    public void Paths_AreFrozen()
    {
        Assert.Equal("/data/extents/11111111-2222-3333-4444-555555555555/pg-7", PlacementGroupStore.GroupDirectory("/data", VolumeId, 7));
        Assert.Equal("s0-e0000000123", PlacementGroupStore.ExtentFileStem(0, 123));
    }

    [Fact]
    public async Task MetadataSlot_LayoutIsFrozen()
    {
        var options = new ExtentStoreOptions { BlockSizeBytes = 4096, ExtentSizeBytes = 64 * 4096, GroupCount = 4 };
        using (var store = PlacementGroupStore.Open(PosixFileSystem.Instance, _dir.Path, VolumeId, 1, options))
        {
            var payload = new byte[4096];
            payload.AsSpan().Fill(0xAB);
            await store.ApplyAsync([ExtentWrite.Data(VolumeId, 64, new Lsn(2, 7), payload, 4096), ExtentWrite.Zero(VolumeId, 66, 1, new Lsn(2, 8))]);
        }

        var directory = PlacementGroupStore.GroupDirectory(_dir.Path, VolumeId, 1);
        var meta = await File.ReadAllBytesAsync(Path.Combine(directory, "s0-e0000000001.meta"));
        var data = new FileInfo(Path.Combine(directory, "s0-e0000000001.data"));

        // Data file: the extent's full length, sparse.
        Assert.Equal(64 * 4096, data.Length);

        // Two 4096-byte slots; generation 1 went to slot 1, slot 0 is still a hole.
        Assert.Equal(8192, meta.Length);
        Assert.True(meta.AsSpan(0, 4096).IndexOfAnyExcept((byte)0) < 0);
        var slot = meta.AsSpan(4096, 4096);

        Assert.Equal("CVGEXTM1"u8.ToArray(), slot[..8].ToArray());
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(slot[8..]));        // format version
        Assert.Equal(128, BinaryPrimitives.ReadUInt16LittleEndian(slot[10..]));      // header size
        Assert.Equal(4096, BinaryPrimitives.ReadInt32LittleEndian(slot[12..]));      // block size
        Assert.Equal(64, BinaryPrimitives.ReadInt32LittleEndian(slot[16..]));        // blocks per extent
        Assert.Equal(Convert.FromHexString("11111111222233334444555555555555"), slot[24..40].ToArray()); // volume id, RFC 4122 order
        Assert.Equal(0ul, BinaryPrimitives.ReadUInt64LittleEndian(slot[40..]));       // snapshot id
        Assert.Equal(1L, BinaryPrimitives.ReadInt64LittleEndian(slot[48..]));         // extent index
        Assert.Equal(1ul, BinaryPrimitives.ReadUInt64LittleEndian(slot[56..]));       // generation
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(slot[64..]));        // high-water epoch
        Assert.Equal(8ul, BinaryPrimitives.ReadUInt64LittleEndian(slot[72..]));       // high-water sequence
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(slot[80..]));          // data blocks
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(slot[84..]));          // zero blocks
        Assert.True(slot[88..128].IndexOfAnyExcept((byte)0) < 0);

        // Bitmap at 128, 2 bits a block, 16 bytes for 64 blocks: block 0 data (01), block 2 zero (10 << 4).
        Assert.Equal(0x21, slot[128]);
        Assert.True(slot[129..144].IndexOfAnyExcept((byte)0) < 0);

        // Entries at 144, 16 bytes each: epoch u32, block CRC32C u32, sequence u64.
        var payloadCrc = Crc32C.Compute(Enumerable.Repeat((byte)0xAB, 4096).ToArray());
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(slot[144..]));
        Assert.Equal(payloadCrc, BinaryPrimitives.ReadUInt32LittleEndian(slot[148..]));
        Assert.Equal(7ul, BinaryPrimitives.ReadUInt64LittleEndian(slot[152..]));
        Assert.True(slot[160..176].IndexOfAnyExcept((byte)0) < 0);               // block 1 never written
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(slot[176..]));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(slot[180..]));
        Assert.Equal(8ul, BinaryPrimitives.ReadUInt64LittleEndian(slot[184..]));

        // Slot checksum at 144 + 64 * 16 = 1168 over bytes [0, 1168); zero padding to 4096.
        Assert.Equal(Crc32C.Compute(slot[..1168]), BinaryPrimitives.ReadUInt32LittleEndian(slot[1168..]));
        Assert.Equal(GoldenSlotCrc, BinaryPrimitives.ReadUInt32LittleEndian(slot[1168..]));
        Assert.True(slot[1172..].IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public async Task ExportStream_LayoutIsFrozen()
    {
        var options = new ExtentStoreOptions { BlockSizeBytes = 512, ExtentSizeBytes = 8 * 512, GroupCount = 1 };
        using var store = PlacementGroupStore.Open(PosixFileSystem.Instance, _dir.Path, VolumeId, 0, options);
        var payload = new byte[512];
        payload.AsSpan().Fill(0x5C);
        await store.ApplyAsync([ExtentWrite.Data(VolumeId, 2, new Lsn(1, 3), payload, 512), ExtentWrite.Zero(VolumeId, 5, 1, new Lsn(1, 4))]);
        using var export = new MemoryStream();
        await store.ExportExtentAsync(0, export);
        var bytes = export.ToArray();

        // Header 64 + data record 32 + 512 + zero record 32 + end record 32.
        Assert.Equal(64 + 32 + 512 + 32 + 32, bytes.Length);
        var header = bytes.AsSpan(0, 64);
        Assert.Equal("CVGEXTX1"u8.ToArray(), header[..8].ToArray());
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(header[8..]));
        Assert.Equal(512, BinaryPrimitives.ReadInt32LittleEndian(header[12..]));
        Assert.Equal(8, BinaryPrimitives.ReadInt32LittleEndian(header[16..]));
        Assert.Equal(Convert.FromHexString("11111111222233334444555555555555"), header[24..40].ToArray());
        Assert.Equal(0L, BinaryPrimitives.ReadInt64LittleEndian(header[48..]));
        Assert.Equal(Crc32C.Compute(header[..60]), BinaryPrimitives.ReadUInt32LittleEndian(header[60..]));

        var record = bytes.AsSpan(64, 32);
        Assert.Equal(1, record[0]);
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(record[4..]));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(record[8..]));
        Assert.Equal(3ul, BinaryPrimitives.ReadUInt64LittleEndian(record[16..]));
        Assert.Equal(Crc32C.Compute(payload), BinaryPrimitives.ReadUInt32LittleEndian(record[24..]));
        Assert.Equal(Crc32C.Compute(record[..28]), BinaryPrimitives.ReadUInt32LittleEndian(record[28..]));
        Assert.Equal(payload, bytes[96..608]);

        Assert.Equal(2, bytes[608]);
        Assert.Equal(5, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(612)));
        Assert.Equal(0xEE, bytes[640]);
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(644)));
        Assert.Equal(GoldenExportCrc, Crc32C.Compute(bytes));
    }
}
