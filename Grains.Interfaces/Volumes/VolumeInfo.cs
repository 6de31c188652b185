namespace Converge.Volumes;

/// <summary>A volume as clients see it. <see cref="VolumeId"/> is new on every create, so records never outlive a name.</summary>
[GenerateSerializer, Immutable, Alias("Converge.VolumeInfo")]
public sealed record VolumeInfo(
    [property: Id(0)] Guid VolumeId,
    [property: Id(1)] string Name,
    [property: Id(2)] long SizeBytes,
    [property: Id(3)] int BlockSizeBytes,
    [property: Id(4)] ulong Epoch,
    [property: Id(5)] string? AttachedNode,
    [property: Id(6)] DateTime CreatedUtc,
    [property: Id(7)] IReadOnlyList<string> FormerHolders);

/// <summary>Why a volume operation did not happen. Expected outcomes, so values rather than exceptions.</summary>
[GenerateSerializer, Alias("Converge.VolumeError")]
public enum VolumeError
{
    None = 0,
    InvalidName = 1,
    InvalidSize = 2,
    InvalidBlockSize = 3,
    AlreadyExists = 4,
    NotFound = 5,
    Attached = 6,
    ShrinkRefused = 7,
    AttachedElsewhere = 8,
    StaleEpoch = 9,
    InvalidNode = 10,

    /// <summary>An open named no client handle, or one already closed (a retried open that arrived after its close).</summary>
    InvalidHandle = 11,
}

/// <summary>The outcome of a volume operation: the volume on success, otherwise an error and a message for people.</summary>
[GenerateSerializer, Immutable, Alias("Converge.VolumeResult")]
public sealed record VolumeResult(
    [property: Id(0)] VolumeError Error,
    [property: Id(1)] string Message,
    [property: Id(2)] VolumeInfo? Volume)
{
    public bool Ok => Error == VolumeError.None;

    public static VolumeResult Success(VolumeInfo volume) => new(VolumeError.None, "", volume);

    public static VolumeResult Fail(VolumeError error, string message) => new(error, message, null);
}

/// <summary>An attachment of a volume to one compute node: the epoch fences older writers, the lease bounds how long it holds without renewal.</summary>
[GenerateSerializer, Immutable, Alias("Converge.Attachment")]
public sealed record Attachment(
    [property: Id(0)] VolumeInfo Volume,
    [property: Id(1)] string Node,
    [property: Id(2)] ulong Epoch,
    [property: Id(3)] int LeaseMs,
    [property: Id(4)] string? PreviousHolder = null,
    [property: Id(5)] ulong PreviousEpoch = 0);

[GenerateSerializer, Immutable, Alias("Converge.AttachResult")]
public sealed record AttachResult(
    [property: Id(0)] VolumeError Error,
    [property: Id(1)] string Message,
    [property: Id(2)] Attachment? Attachment)
{
    public bool Ok => Error == VolumeError.None;
}
