namespace Converge.Log;

/// <summary>What a log record does. The numeric values are on disk and on the wire: never renumber.</summary>
public enum LogRecordKind : byte
{
    /// <summary>Whole blocks of data at <see cref="LogRecordHeader.OffsetBytes"/>; the payload is the data.</summary>
    Write = 1,

    /// <summary>A range tombstone (TRIM, WRITE_ZEROES): <see cref="LogRecordHeader.LengthBytes"/> bytes read as zeros; no payload.</summary>
    Zero = 2,

    /// <summary>Fences a volume at an epoch: the log refuses that volume's appends from older epochs afterwards.</summary>
    Fence = 3,

    /// <summary>Seals a segment: no appends to it afterwards.</summary>
    Seal = 4,
}

/// <summary>Why <see cref="LogRecord.TryDecode"/> refused bytes.</summary>
public enum LogRecordDecodeStatus
{
    Ok = 0,
    TooShort,
    BadMagic,
    UnsupportedVersion,
    BadKind,
    BadLength,
    BadChecksum,
}
