namespace Converge.Log;

/// <summary>
/// The decoded header of a log record. <see cref="Lsn"/> is (Epoch, Sequence). For <see cref="LogRecordKind.Write"/>
/// the payload is exactly <see cref="LengthBytes"/> long; the other kinds carry no payload.
/// </summary>
public readonly record struct LogRecordHeader(
    LogRecordKind Kind,
    Guid VolumeId,
    ulong Epoch,
    ulong Sequence,
    Guid SegmentId,
    ulong OffsetBytes,
    ulong LengthBytes,
    int PayloadLengthBytes)
{
    public Lsn Lsn => new(Epoch, Sequence);

    public static LogRecordHeader ForWrite(Guid volumeId, Lsn lsn, Guid segmentId, ulong offsetBytes, int payloadLengthBytes) =>
        new(LogRecordKind.Write, volumeId, lsn.Epoch, lsn.Sequence, segmentId, offsetBytes, (ulong)payloadLengthBytes, payloadLengthBytes);

    public static LogRecordHeader ForZero(Guid volumeId, Lsn lsn, Guid segmentId, ulong offsetBytes, ulong lengthBytes) =>
        new(LogRecordKind.Zero, volumeId, lsn.Epoch, lsn.Sequence, segmentId, offsetBytes, lengthBytes, 0);

    /// <summary>A fence of <paramref name="volumeId"/> at <paramref name="epoch"/>; <paramref name="segmentId"/> may be <see cref="Guid.Empty"/>.</summary>
    public static LogRecordHeader ForFence(Guid volumeId, ulong epoch, Guid segmentId) =>
        new(LogRecordKind.Fence, volumeId, epoch, 0, segmentId, 0, 0, 0);

    /// <summary>A seal of <paramref name="segmentId"/> by a writer at <paramref name="epoch"/>.</summary>
    public static LogRecordHeader ForSeal(Guid volumeId, ulong epoch, Guid segmentId) =>
        new(LogRecordKind.Seal, volumeId, epoch, 0, segmentId, 0, 0, 0);
}
