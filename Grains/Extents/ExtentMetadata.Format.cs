using System.Buffers.Binary;
using Converge.Storage;
using Crc32C = Converge.Log.Crc32C;

namespace Converge.Grains.Extents;

/// <summary>
/// The metadata file format (docs/extent-format.md): two slots written alternately (generation g goes to slot g % 2),
/// each a header, a 2-bit-per-block allocation bitmap, 16-byte block entries and a CRC32C over all of it.
/// A torn slot write leaves the other slot intact. Offsets here are frozen by the golden test.
/// </summary>
internal sealed partial class ExtentMetadata
{
    public static ReadOnlySpan<byte> Magic => "CVGEXTM1"u8;

    public const ushort FormatVersion = 1;
    public const int HeaderSizeBytes = 128;
    public const int EntrySizeBytes = 16;
    public const int SlotAlignmentBytes = 4096;

    public static int BitmapSizeBytes(int blocksPerExtent) => ((blocksPerExtent + 3) / 4 + 7) & ~7;

    public static int EntriesOffset(int blocksPerExtent) => HeaderSizeBytes + BitmapSizeBytes(blocksPerExtent);

    public static int ChecksumOffset(int blocksPerExtent) => EntriesOffset(blocksPerExtent) + blocksPerExtent * EntrySizeBytes;

    public static int SlotSizeBytes(int blocksPerExtent) =>
        (ChecksumOffset(blocksPerExtent) + sizeof(uint) + SlotAlignmentBytes - 1) / SlotAlignmentBytes * SlotAlignmentBytes;

    /// <summary>Writes this state as a complete slot image into <paramref name="slot"/> (exactly one slot long).</summary>
    public void WriteSlot(Span<byte> slot, in SlotIdentity identity)
    {
        var n = BlockCount;
        if (slot.Length != SlotSizeBytes(n))
        {
            throw new ArgumentException($"slot buffer is {slot.Length} bytes, expected {SlotSizeBytes(n)}", nameof(slot));
        }

        slot.Clear();
        Magic.CopyTo(slot);
        BinaryPrimitives.WriteUInt16LittleEndian(slot[8..], FormatVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(slot[10..], HeaderSizeBytes);
        BinaryPrimitives.WriteInt32LittleEndian(slot[12..], identity.BlockSizeBytes);
        BinaryPrimitives.WriteInt32LittleEndian(slot[16..], n);
        identity.VolumeId.TryWriteBytes(slot[24..40], bigEndian: true, out _);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[40..], identity.SnapshotId);
        BinaryPrimitives.WriteInt64LittleEndian(slot[48..], identity.ExtentIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[56..], Generation);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[64..], HighWater.Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[72..], HighWater.Sequence);
        BinaryPrimitives.WriteInt32LittleEndian(slot[80..], DataBlocks);
        BinaryPrimitives.WriteInt32LittleEndian(slot[84..], ZeroBlocks);

        var bitmap = slot.Slice(HeaderSizeBytes, BitmapSizeBytes(n));
        var entries = slot[EntriesOffset(n)..];
        for (var b = 0; b < n; b++)
        {
            bitmap[b >> 2] |= (byte)((int)_states[b] << ((b & 3) * 2));
            var entry = entries.Slice(b * EntrySizeBytes, EntrySizeBytes);
            BinaryPrimitives.WriteUInt32LittleEndian(entry, _lsns[b].Epoch);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], _crcs[b]);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], _lsns[b].Sequence);
        }

        var checksumOffset = ChecksumOffset(n);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[checksumOffset..], Crc32C.Compute(slot[..checksumOffset]));
    }

    /// <summary>
    /// Parses a slot. Returns <see cref="SlotStatus.Empty"/> for an all-zero slot (never written),
    /// <see cref="SlotStatus.Invalid"/> for anything that fails its checksum or belongs to another extent.
    /// </summary>
    public static SlotStatus TryReadSlot(ReadOnlySpan<byte> slot, in SlotIdentity identity, int blocksPerExtent, out ExtentMetadata? metadata, out string? problem)
    {
        metadata = null;
        problem = null;
        if (slot.Length < SlotSizeBytes(blocksPerExtent))
        {
            problem = $"slot is {slot.Length} bytes, shorter than {SlotSizeBytes(blocksPerExtent)}";
            return slot.ContainsAnyExcept((byte)0) ? SlotStatus.Invalid : SlotStatus.Empty;
        }

        var checksumOffset = ChecksumOffset(blocksPerExtent);
        if (!slot[..(checksumOffset + sizeof(uint))].ContainsAnyExcept((byte)0))
        {
            return SlotStatus.Empty;
        }

        if (!slot[..8].SequenceEqual(Magic))
        {
            problem = "bad magic";
            return SlotStatus.Invalid;
        }

        var stored = BinaryPrimitives.ReadUInt32LittleEndian(slot[checksumOffset..]);
        var actual = Crc32C.Compute(slot[..checksumOffset]);
        if (stored != actual)
        {
            problem = $"checksum mismatch (stored {stored:x8}, computed {actual:x8})";
            return SlotStatus.Invalid;
        }

        // Past the checksum, a mismatch is not a torn write but a misplaced or foreign file: still never trusted.
        var version = BinaryPrimitives.ReadUInt16LittleEndian(slot[8..]);
        var blockSize = BinaryPrimitives.ReadInt32LittleEndian(slot[12..]);
        var blocks = BinaryPrimitives.ReadInt32LittleEndian(slot[16..]);
        var volumeId = new Guid(slot[24..40], bigEndian: true);
        var snapshotId = BinaryPrimitives.ReadUInt64LittleEndian(slot[40..]);
        var extentIndex = BinaryPrimitives.ReadInt64LittleEndian(slot[48..]);
        if (version != FormatVersion || blockSize != identity.BlockSizeBytes || blocks != blocksPerExtent
            || volumeId != identity.VolumeId || snapshotId != identity.SnapshotId || extentIndex != identity.ExtentIndex)
        {
            problem = $"slot belongs elsewhere: version {version}, block size {blockSize}, {blocks} blocks, {volumeId:N}/s{snapshotId}/e{extentIndex}";
            return SlotStatus.Invalid;
        }

        var result = new ExtentMetadata(blocksPerExtent) { Generation = BinaryPrimitives.ReadUInt64LittleEndian(slot[56..]) };
        var bitmap = slot.Slice(HeaderSizeBytes, BitmapSizeBytes(blocksPerExtent));
        var entries = slot[EntriesOffset(blocksPerExtent)..];
        for (var b = 0; b < blocksPerExtent; b++)
        {
            var state = (BlockState)((bitmap[b >> 2] >> ((b & 3) * 2)) & 3);
            var entry = entries.Slice(b * EntrySizeBytes, EntrySizeBytes);
            var lsn = new Lsn(BinaryPrimitives.ReadUInt32LittleEndian(entry), BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]));
            if (state == BlockState.Corrupt || (state == BlockState.Unwritten) != lsn.IsNone)
            {
                problem = $"block {b}: state {state} with LSN {lsn}";
                return SlotStatus.Invalid;
            }

            result.LoadBlock(b, lsn, state, BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]));
        }

        var highWater = new Lsn(BinaryPrimitives.ReadUInt32LittleEndian(slot[64..]), BinaryPrimitives.ReadUInt64LittleEndian(slot[72..]));
        if (result.Generation == 0 || highWater != result.HighWater)
        {
            problem = $"generation {result.Generation}, high water {highWater} against entries' {result.HighWater}";
            return SlotStatus.Invalid;
        }

        metadata = result;
        return SlotStatus.Valid;
    }
}

internal enum SlotStatus
{
    Empty,
    Valid,
    Invalid,
}

/// <summary>What a metadata slot must name to be accepted for an extent.</summary>
internal readonly record struct SlotIdentity(Guid VolumeId, ulong SnapshotId, long ExtentIndex, int BlockSizeBytes);
