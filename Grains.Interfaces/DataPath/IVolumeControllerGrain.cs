namespace Converge.DataPath;

/// <summary>Outcome of one I/O through a volume controller; mapped onto NBD errors by the NBD server.</summary>
[GenerateSerializer, Alias("Converge.IoStatus")]
public enum IoStatus
{
    Ok = 0,
    /// <summary>The range runs past the end of the volume.</summary>
    OutOfRange = 1,
    /// <summary>This node no longer holds the volume (fenced by a newer attach, or its lease lapsed).</summary>
    NotAttached = 2,
    /// <summary>The data could not be made durable on two mirrors, or read from any copy.</summary>
    IoError = 3,
    /// <summary>NVRAM stayed full past the wait bound.</summary>
    Busy = 4,
    Invalid = 5,
}

[GenerateSerializer, Immutable, Alias("Converge.OpenReply")]
public sealed record OpenReply(
    [property: Id(0)] Volumes.VolumeError Error,
    [property: Id(1)] string Message,
    [property: Id(2)] long SizeBytes,
    [property: Id(3)] int BlockSizeBytes,
    [property: Id(4)] ulong Epoch);

/// <summary>Bytes read through a controller. Immutable so the same-silo NBD server receives the array without a copy.</summary>
[GenerateSerializer, Immutable, Alias("Converge.VolumeReadReply")]
public readonly record struct VolumeReadReply(
    [property: Id(0)] IoStatus Status,
    [property: Id(1)] byte[]? Data);

/// <summary>
/// How a run of a volume reads (<see cref="IVolumeControllerGrain.GetAllocationAsync"/>): <paramref name="Zero"/> when no
/// data is stored for it (never written, trimmed or zeroed, and known so on an extent replica), so it reads as zeros;
/// otherwise it may hold data.
/// </summary>
[GenerateSerializer, Immutable, Alias("Converge.AllocationSpan")]
public readonly record struct AllocationSpan(
    [property: Id(0)] long LengthBytes,
    [property: Id(1)] bool Zero);

/// <summary>Allocation of a volume range from its first byte on, in order; it may cover less than was asked.</summary>
[GenerateSerializer, Immutable, Alias("Converge.AllocationReply")]
public readonly record struct AllocationReply(
    [property: Id(0)] IoStatus Status,
    [property: Id(1)] AllocationSpan[]? Runs);

/// <summary>
/// The host-side controller of one attached volume (the "write grain"), keyed <c>compute-N/volumeName</c> and pinned to
/// that compute node. It assigns LSNs, mirrors every record to two storage nodes, keeps the dirty map and serves reads
/// from cache, log or extents. Reentrant: many I/Os are in flight at once.
/// </summary>
[Alias("Converge.IVolumeControllerGrain")]
public interface IVolumeControllerGrain : IGrainWithStringKey
{
    /// <summary>
    /// Attaches the volume here (new epoch, fencing the previous holder) for one more client handle. The client names
    /// the handle (one id per NBD connection or <c>VolumeHandle</c>), so an open retried after a lost reply is counted
    /// once; an id already closed is refused (<see cref="VolumeError.InvalidHandle"/>). With a non-zero
    /// <paramref name="expiry"/> (<see cref="HandleExpiry"/>) the handle is released as if closed once it goes that long
    /// without an open or a <see cref="KeepHandleAsync"/> (its client died); zero holds it until it is closed (the NBD
    /// gateway, which lives in this silo and closes with its connection). An expiry out of range is refused
    /// (<see cref="VolumeError.InvalidHandle"/>).
    /// </summary>
    [Alias("Open"), ResponseTimeout("00:00:30")]
    Task<OpenReply> OpenAsync(Guid handleId, TimeSpan expiry);

    /// <summary>
    /// Answers at once and changes nothing: a client with calls in flight that go unanswered asks this to learn whether
    /// the controller's compute node is still in the cluster (a node gone fails the call fast, by placement or by the
    /// gateway knowing the silo dead).
    /// </summary>
    [Alias("Ping"), ResponseTimeout("00:00:02")]
    Task PingAsync();

    /// <summary>
    /// Renews an expiring handle: its client is alive. <paramref name="heldEpoch"/> is the newest epoch the client knows
    /// its handle held (the open's, then each renewal's answer). A handle this activation does not know is taken on when
    /// it held this node's previous attachment, just before this one (the activation was lost with a silo and I/O
    /// attached a new one before any hand-over); otherwise it is not held here. <see cref="HandleState.Closed"/> when the
    /// handle was closed or has expired. An expiry out of range or zero throws <see cref="ArgumentException"/>.
    /// </summary>
    [Alias("KeepHandle"), ResponseTimeout("00:00:05")]
    Task<HandleRenewal> KeepHandleAsync(Guid handleId, ulong heldEpoch, TimeSpan expiry);

    /// <summary>
    /// The client handle is gone; the last one detaches after in-flight I/O drains. Closing an id that is not open
    /// changes nothing but remembers the id, so that its open, if still on its way, is refused.
    /// </summary>
    [Alias("Close")]
    Task CloseAsync(Guid handleId);

    /// <summary>
    /// Called by an activation of this grain that the runtime deactivated while the volume was attached (its grain
    /// directory entry was lost with a failed silo): attaches again here, for the client handles in
    /// <paramref name="handles"/> (each with its expiry, counted afresh from now), if the volume is still attached to this node at <paramref name="heldEpoch"/>. False
    /// when it should be asked again (the attach failed for now); true when done or no longer wanted.
    /// </summary>
    [Alias("Resume"), ResponseTimeout("00:00:30")]
    Task<bool> ResumeAsync(ulong heldEpoch, HandleHold[] handles);

    /// <summary>
    /// Completes when the data is committed on both mirrors ("acknowledged"). <paramref name="notAfterUtcTicks"/>
    /// (<see cref="WriteDeadline"/>; 0 = none) is the latest time the write may still be given its place in the log:
    /// past it the write is refused unapplied, so a write whose caller gave up can never land after a later one.
    /// </summary>
    [Alias("Write"), ResponseTimeout("00:00:10")]
    Task<IoStatus> WriteAcknowledgedAsync(long offsetBytes, [Immutable] ReadOnlyMemory<byte> data, long notAfterUtcTicks = 0);

    /// <summary>Logs a zero range (TRIM or WRITE_ZEROES) as a tombstone; completes when both mirrors committed it. Deadline as for writes.</summary>
    [Alias("Zero"), ResponseTimeout("00:00:10")]
    Task<IoStatus> ZeroAcknowledgedAsync(long offsetBytes, long lengthBytes, long notAfterUtcTicks = 0);

    [Alias("Read"), ResponseTimeout("00:00:10")]
    Task<VolumeReadReply> ReadAsync(long offsetBytes, int lengthBytes);

    /// <summary>
    /// Several writes in one call, each handled exactly as <see cref="WriteAcknowledgedAsync"/> (started in array order,
    /// acknowledged independently); the statuses come back in the same order once all are settled. For a client with many
    /// writes in flight at once (the NBD gateway gathers what one connection dispatches together): one grain call instead
    /// of one each. At most <see cref="VolumeBatch.MaxRequests"/> writes; arrays of different lengths are refused with
    /// <see cref="ArgumentException"/> before any write starts.
    /// </summary>
    [Alias("WriteMany"), ResponseTimeout("00:00:10")]
    Task<IoStatus[]> WriteManyAcknowledgedAsync([Immutable] long[] offsetsBytes, [Immutable] ReadOnlyMemory<byte>[] data, long notAfterUtcTicks = 0);

    /// <summary>Several reads in one call, each as <see cref="ReadAsync"/>; limits and refusals as for <see cref="WriteManyAcknowledgedAsync"/>.</summary>
    [Alias("ReadMany"), ResponseTimeout("00:00:10")]
    Task<VolumeReadReply[]> ReadManyAsync([Immutable] long[] offsetsBytes, [Immutable] int[] lengthsBytes);

    /// <summary>
    /// Diagnostics: every copy of one block this controller can see (its dirty entry, the cache, the log mirrors of the
    /// dirty segment, each extent replica), each with its LSN and data. Changes nothing; for drills and support.
    /// </summary>
    [Alias("DescribeBlock"), ResponseTimeout("00:00:20")]
    Task<BlockCopy[]> DescribeBlockAsync(long block);

    /// <summary>
    /// Which parts of a range read as zeros without data stored for them (NBD BLOCK_STATUS, base:allocation). Covers the
    /// range from its first byte, possibly not to its end (at most <see cref="VolumeBatch.MaxAllocationBlocks"/> blocks);
    /// a run is reported Zero only when that is proven (no write since the last destage, and an extent replica that has
    /// every block says so), anything else as data, which is always a true answer. Changes nothing.
    /// </summary>
    [Alias("Allocation"), ResponseTimeout("00:00:10")]
    Task<AllocationReply> GetAllocationAsync(long offsetBytes, long lengthBytes);
}

/// <summary>A client handle a controller holds, as handed to a successor activation: zero <paramref name="Expiry"/> never expires.</summary>
[GenerateSerializer, Immutable, Alias("Converge.HandleHold")]
public readonly record struct HandleHold(
    [property: Id(0)] Guid Id,
    [property: Id(1)] TimeSpan Expiry);

/// <summary>What <see cref="IVolumeControllerGrain.KeepHandleAsync"/> found.</summary>
[GenerateSerializer, Alias("Converge.HandleState")]
public enum HandleState
{
    /// <summary>Held and renewed.</summary>
    Held = 0,
    /// <summary>Closed, or expired unrenewed: it holds nothing any more.</summary>
    Closed = 1,
    /// <summary>
    /// This activation does not hold the volume for the handle (not attached, or attached for other handles). A hand-over
    /// from a lost activation may still bring it; a client that hears this for a whole expiry holds nothing.
    /// </summary>
    NotHeld = 2,
}

/// <summary>A renewal's answer: the handle's state and, when held, the epoch of the attachment that holds it.</summary>
[GenerateSerializer, Immutable, Alias("Converge.HandleRenewal")]
public readonly record struct HandleRenewal(
    [property: Id(0)] HandleState State,
    [property: Id(1)] ulong Epoch);

/// <summary>
/// How long a client handle may go unrenewed before the controller releases it as if closed. A client process that dies
/// never closes its handles; without an expiry its volume would stay attached to that compute node, lease renewed, and
/// no other node could take it without forcing.
/// </summary>
public static class HandleExpiry
{
    /// <summary>Held until closed.</summary>
    public static readonly TimeSpan Never = TimeSpan.Zero;

    /// <summary>What <c>VolumeHandle</c> asks for unless told otherwise.</summary>
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(30);

    /// <summary>Shorter ones would expire on a gateway failover or a collection pause.</summary>
    public static readonly TimeSpan Min = TimeSpan.FromSeconds(2);

    public static readonly TimeSpan Max = TimeSpan.FromHours(1);

    /// <summary>How often a client renews: five chances before its handle expires.</summary>
    public static TimeSpan RenewPeriod(TimeSpan expiry) => expiry / 5;

    /// <summary>Null when <paramref name="expiry"/> is <see cref="Never"/> or within [<see cref="Min"/>, <see cref="Max"/>]; otherwise why not.</summary>
    public static string? Check(TimeSpan expiry) =>
        expiry == Never || (expiry >= Min && expiry <= Max)
            ? null
            : $"a handle expiry is 0 (held until closed) or between {Min.TotalSeconds:0} s and {Max.TotalMinutes:0} min, not {expiry.TotalSeconds:0.###} s";
}

/// <summary>Limits of the controller's batch calls.</summary>
public static class VolumeBatch
{
    /// <summary>The most requests one <see cref="IVolumeControllerGrain.WriteManyAcknowledgedAsync"/> or <see cref="IVolumeControllerGrain.ReadManyAsync"/> carries.</summary>
    public const int MaxRequests = 256;

    /// <summary>The most blocks one <see cref="IVolumeControllerGrain.GetAllocationAsync"/> answer covers (64 MiB of 4 KiB blocks).</summary>
    public const int MaxAllocationBlocks = 16384;

    /// <summary>Throws <see cref="ArgumentException"/> unless the arrays pair up and hold 1 to <see cref="MaxRequests"/> requests.</summary>
    public static void Validate(Array? first, Array? second)
    {
        if (first is null || second is null)
        {
            throw new ArgumentException("a batch needs both arrays");
        }

        if (first.Length != second.Length)
        {
            throw new ArgumentException($"a batch of {first.Length} offsets and {second.Length} other entries");
        }

        if (first.Length is 0 or > MaxRequests)
        {
            throw new ArgumentException($"a batch holds 1 to {MaxRequests} requests, not {first.Length}");
        }
    }
}

/// <summary>One copy of a block as <see cref="IVolumeControllerGrain.DescribeBlockAsync"/> found it.</summary>
[GenerateSerializer, Immutable, Alias("Converge.BlockCopy")]
public sealed record BlockCopy(
    [property: Id(0)] string Source,
    [property: Id(1)] string Lsn,
    [property: Id(2)] byte[]? Data,
    [property: Id(3)] string Note);

/// <summary>
/// The deadline a writer gives each write. A caller whose call times out (10 s) counts the write as failed and may write
/// the same block again; were the first write still queued in the controller (behind an attach, say), it could take its
/// log position after the second and overwrite an acknowledged write with one reported failed. So a write carries the
/// time by which it must have its log position (LSN), 2 s before the caller's timeout: the controller refuses it
/// unapplied after that, and once it has an LSN, a later write of its blocks waits for it and gets a higher one. The 2 s
/// also cover clock skew between caller and compute silo (the NBD gateway runs on the compute silo itself).
/// </summary>
public static class WriteDeadline
{
    public static readonly TimeSpan Budget = TimeSpan.FromSeconds(8);

    /// <summary>The deadline of a write sent now.</summary>
    public static long FromNow() => DateTime.UtcNow.Ticks + Budget.Ticks;

    /// <summary>True when <paramref name="notAfterUtcTicks"/> is set and has passed.</summary>
    public static bool Passed(long notAfterUtcTicks) => notAfterUtcTicks != 0 && DateTime.UtcNow.Ticks > notAfterUtcTicks;
}
