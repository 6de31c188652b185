namespace Converge.Nbd;

/// <summary>
/// An export that only describes a volume for NBD_OPT_INFO: the server reads its size, block size, name and
/// description and disposes it. It holds nothing, so describing never attaches; any I/O on it is refused.
/// </summary>
public sealed class DescribedExport(string name, string description, long sizeBytes, int blockSizeBytes) : INbdExport
{
    public string Name { get; } = name;

    public string Description { get; } = description;

    public long SizeBytes { get; } = sizeBytes;

    public int BlockSizeBytes { get; } = blockSizeBytes;

    public ValueTask<NbdIoStatus> ReadAsync(long offsetBytes, Memory<byte> destination, CancellationToken cancellationToken) => Refused();

    public ValueTask<NbdIoStatus> WriteAsync(long offsetBytes, ReadOnlyMemory<byte> source, CancellationToken cancellationToken) => Refused();

    public ValueTask<NbdIoStatus> WriteZeroesAsync(long offsetBytes, long lengthBytes, bool mayDeallocate, CancellationToken cancellationToken) => Refused();

    public ValueTask<NbdIoStatus> TrimAsync(long offsetBytes, long lengthBytes, CancellationToken cancellationToken) => Refused();

    public ValueTask<NbdIoStatus> FlushAsync(CancellationToken cancellationToken) => Refused();

    public ValueTask<(NbdIoStatus Status, IReadOnlyList<NbdExtent> Extents)> GetBlockStatusAsync(long offsetBytes, long lengthBytes, CancellationToken cancellationToken) =>
        ValueTask.FromResult<(NbdIoStatus, IReadOnlyList<NbdExtent>)>((NbdIoStatus.NotPermitted, []));

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private static ValueTask<NbdIoStatus> Refused() => ValueTask.FromResult(NbdIoStatus.NotPermitted);
}
