namespace Converge.Nbd;

/// <summary>
/// What an NBD server serves: the exports it can list and open. The server owns the protocol; the
/// backend owns the bytes. Implementations must be safe for concurrent use by many connections.
/// </summary>
public interface INbdBackend
{
    /// <summary>The exports a client may open (NBD_OPT_LIST).</summary>
    ValueTask<IReadOnlyList<NbdExportInfo>> ListExportsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Opens an export for one connection (NBD_OPT_GO / EXPORT_NAME). Refusals are values, not exceptions:
    /// an unknown name, or a policy refusal with a message for the client (e.g. the volume is attached elsewhere).
    /// </summary>
    ValueTask<NbdOpenResult> OpenAsync(string exportName, CancellationToken cancellationToken);

    /// <summary>
    /// Answers NBD_OPT_INFO: the export returned is only read for its size, block size, name and description, then
    /// disposed; it never serves I/O. The default opens and disposes; a backend whose open has side effects (attaching a
    /// volume) overrides this to describe without them, e.g. with a <see cref="DescribedExport"/>.
    /// </summary>
    ValueTask<NbdOpenResult> DescribeAsync(string exportName, CancellationToken cancellationToken) => OpenAsync(exportName, cancellationToken);
}

/// <summary>One exported volume as NBD_OPT_LIST shows it.</summary>
public sealed record NbdExportInfo(string Name, string Description);

/// <summary>Why an open was refused.</summary>
public enum NbdOpenStatus
{
    Ok = 0,
    UnknownExport = 1,
    PolicyRefused = 2,
    Unavailable = 3,
}

/// <summary>The outcome of <see cref="INbdBackend.OpenAsync"/>: an export when <see cref="Status"/> is Ok, else a message.</summary>
public readonly record struct NbdOpenResult(NbdOpenStatus Status, INbdExport? Export, string Message)
{
    public static NbdOpenResult Opened(INbdExport export) => new(NbdOpenStatus.Ok, export, "");
    public static NbdOpenResult Refused(NbdOpenStatus status, string message) => new(status, null, message);
}

/// <summary>Outcome of one I/O, mapped by the server onto NBD error codes.</summary>
public enum NbdIoStatus
{
    Ok = 0,
    /// <summary>EIO: the data could not be read or made durable.</summary>
    IoError = 5,
    /// <summary>EPERM: the connection lost its right to the volume (fenced, lease lost).</summary>
    NotPermitted = 1,
    /// <summary>ENOMEM: transient resource exhaustion (NVRAM full past its wait bound).</summary>
    NoMemory = 12,
    /// <summary>EINVAL: a request the export cannot accept.</summary>
    Invalid = 22,
    /// <summary>ENOSPC: a write past the end.</summary>
    NoSpace = 28,
    /// <summary>ESHUTDOWN: the server is going away; the client should reconnect elsewhere.</summary>
    Shutdown = 108,
}

/// <summary>One run of blocks for NBD_CMD_BLOCK_STATUS (base:allocation).</summary>
public readonly record struct NbdExtent(long LengthBytes, bool Hole, bool Zero);

/// <summary>
/// One opened export, owned by one connection and disposed when it closes. Ranges passed in are already
/// checked against <see cref="SizeBytes"/> by the server. Every method may be called concurrently.
/// </summary>
public interface INbdExport : IAsyncDisposable
{
    string Name { get; }

    /// <summary>Human-readable description (NBD_INFO_DESCRIPTION); empty for none.</summary>
    string Description => "";

    long SizeBytes { get; }

    /// <summary>Preferred block size (NBD_INFO_BLOCK_SIZE preferred); a power of two, at least 512.</summary>
    int BlockSizeBytes { get; }

    /// <summary>Fills <paramref name="destination"/> from <paramref name="offsetBytes"/>. The buffer is the caller's.</summary>
    ValueTask<NbdIoStatus> ReadAsync(long offsetBytes, Memory<byte> destination, CancellationToken cancellationToken);

    /// <summary>
    /// Writes <paramref name="source"/> and completes only once the data is acknowledged durable (committed on both
    /// storage mirrors), so FLUSH and FUA hold by construction. The buffer is the caller's again once this completes.
    /// </summary>
    ValueTask<NbdIoStatus> WriteAsync(long offsetBytes, ReadOnlyMemory<byte> source, CancellationToken cancellationToken);

    /// <summary>Makes the range read as zeros; <paramref name="mayDeallocate"/> is false under NBD_CMD_FLAG_NO_HOLE.</summary>
    ValueTask<NbdIoStatus> WriteZeroesAsync(long offsetBytes, long lengthBytes, bool mayDeallocate, CancellationToken cancellationToken);

    /// <summary>Deallocates the range; afterwards it reads as zeros.</summary>
    ValueTask<NbdIoStatus> TrimAsync(long offsetBytes, long lengthBytes, CancellationToken cancellationToken);

    /// <summary>Completes when every write acknowledged so far is durable (true by construction here).</summary>
    ValueTask<NbdIoStatus> FlushAsync(CancellationToken cancellationToken);

    /// <summary>Allocation status of the range, in order, covering at least its first byte.</summary>
    ValueTask<(NbdIoStatus Status, IReadOnlyList<NbdExtent> Extents)> GetBlockStatusAsync(long offsetBytes, long lengthBytes, CancellationToken cancellationToken);
}
