using Converge.Log;

namespace Converge.DataPath;

/// <summary>
/// What a segment's destage leader tells the other mirror (docs/destage.md "One mirror destages"): Destaged lets the
/// follower release its copy without applying it again; Pending asks it to wait; WillNot (the leader's copy may be
/// incomplete: unknown there, damaged log, or a removed node) tells it to destage its own copy.
/// </summary>
[GenerateSerializer, Alias("Converge.LeaderDestage")]
public enum LeaderDestage
{
    Pending = 0,
    Destaged = 1,
    WillNot = 2,
}

/// <summary>One mirror's answer to an append, seal or fence. Expected outcomes only; lost nodes surface as exceptions.</summary>
[GenerateSerializer, Alias("Converge.MirrorStatus")]
public enum MirrorStatus
{
    /// <summary>Committed on this mirror: durable (fdatasync'd, or in tmpfs in memory NVRAM mode).</summary>
    Ok = 0,
    Fenced = 1,
    Sealed = 2,
    SegmentFull = 3,
    NvramFull = 4,
    QueueFull = 5,
    Invalid = 6,
    /// <summary>This mirror's log is poisoned by an I/O fault (fail-stop); the writer must move to another pair.</summary>
    Faulted = 7,
    /// <summary>The record or segment is no longer in this mirror's log (destaged and reclaimed).</summary>
    Gone = 8,
}

/// <summary>A log segment in the volume's catalogue: where its two mirror copies live and which epoch wrote it.</summary>
[GenerateSerializer, Immutable, Alias("Converge.SegmentRecord")]
public sealed record SegmentRecord(
    [property: Id(0)] Guid SegmentId,
    [property: Id(1)] string MirrorA,
    [property: Id(2)] string MirrorB,
    [property: Id(3)] ulong Epoch,
    [property: Id(4)] bool Sealed);

/// <summary>One record of a segment as its index knows it (no payload): enough to rebuild a dirty map.</summary>
[GenerateSerializer, Immutable, Alias("Converge.SegmentEntry")]
public readonly record struct SegmentEntry(
    [property: Id(0)] Lsn Lsn,
    [property: Id(1)] LogRecordKind Kind,
    [property: Id(2)] ulong OffsetBytes,
    [property: Id(3)] ulong LengthBytes);

/// <summary>Bytes read from a mirror. Immutable so same-silo calls pass the array without a copy.</summary>
[GenerateSerializer, Immutable, Alias("Converge.ReadReply")]
public readonly record struct ReadReply(
    [property: Id(0)] MirrorStatus Status,
    [property: Id(1)] byte[]? Data);
