using System.Buffers.Binary;
using Converge.Log;

namespace Converge.Grains.Cache;

/// <summary>
/// Layout of one slot of the flash cache file <c>&lt;dataDir&gt;/cache/flash.dat</c>. The file is an array of slots of
/// <c>HeaderBytes + blockBytes</c>, slot i at offset <c>i * (HeaderBytes + blockBytes)</c>; no file header, because the
/// file is never trusted across a restart (it is truncated when the cache opens). Little-endian.
/// <code>
/// offset size  field
///      0    4  magic 0x31534343 ("CCS1")
///      4    4  data length in bytes (= the file's block size)
///      8   16  volume id (Guid bytes)
///     24    8  block index
///     32    8  LSN epoch
///     40    8  LSN sequence
///     48    4  CRC-32C of the data
///     52    8  reserved, zero
///     60    4  CRC-32C of bytes 0..59
///     64    N  data
/// </code>
/// A slot is checked on every read: both CRCs, and that it holds the key and LSN the in-memory index expects.
/// </summary>
internal static class FlashSlot
{
    public const int HeaderBytes = 64;
    public const uint Magic = 0x31534343;

    private const int HeaderCrcOffset = 60;

    public static void Encode(in CacheKey key, Lsn lsn, ReadOnlySpan<byte> data, Span<byte> slot)
    {
        System.Diagnostics.Debug.Assert(slot.Length == HeaderBytes + data.Length, "slot sized for its data");
        var header = slot[..HeaderBytes];
        header.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], data.Length);
        key.VolumeId.TryWriteBytes(header[8..24]);
        BinaryPrimitives.WriteInt64LittleEndian(header[24..], key.Block);
        BinaryPrimitives.WriteUInt64LittleEndian(header[32..], lsn.Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(header[40..], lsn.Sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(header[48..], Crc32C.Compute(data));
        BinaryPrimitives.WriteUInt32LittleEndian(header[HeaderCrcOffset..], Crc32C.Compute(header[..HeaderCrcOffset]));
        data.CopyTo(slot[HeaderBytes..]);
    }

    /// <summary>Checks a slot read back from the file against the key and LSN the index expects.</summary>
    public static FlashSlotStatus Check(ReadOnlySpan<byte> slot, in CacheKey key, Lsn lsn)
    {
        var header = slot[..HeaderBytes];
        var data = slot[HeaderBytes..];
        if (BinaryPrimitives.ReadUInt32LittleEndian(header[HeaderCrcOffset..]) != Crc32C.Compute(header[..HeaderCrcOffset]) ||
            BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic ||
            BinaryPrimitives.ReadInt32LittleEndian(header[4..]) != data.Length)
        {
            return FlashSlotStatus.Corrupt;
        }

        var holds = new CacheKey(new Guid(header[8..24]), BinaryPrimitives.ReadInt64LittleEndian(header[24..]));
        var holdsLsn = new Lsn(BinaryPrimitives.ReadUInt64LittleEndian(header[32..]), BinaryPrimitives.ReadUInt64LittleEndian(header[40..]));
        if (holds != key || holdsLsn != lsn)
        {
            return FlashSlotStatus.OtherBlock;
        }

        return BinaryPrimitives.ReadUInt32LittleEndian(header[48..]) == Crc32C.Compute(data) ? FlashSlotStatus.Ok : FlashSlotStatus.Corrupt;
    }
}

internal enum FlashSlotStatus
{
    Ok,

    /// <summary>A header or data CRC failed: the bytes on flash are not what was written.</summary>
    Corrupt,

    /// <summary>A valid slot of another block or version (the index and the file disagree).</summary>
    OtherBlock,
}
