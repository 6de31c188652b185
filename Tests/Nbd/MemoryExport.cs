using Converge.Nbd;

namespace Converge.Tests.Nbd;

/// <summary>One connection's handle on a <see cref="MemoryVolume"/>.</summary>
internal sealed class MemoryExport(MemoryVolume volume) : INbdExport
{
    private int _disposed;

    public string Name => volume.Name;

    public string Description => volume.Description;

    public long SizeBytes => volume.SizeBytes;

    public int BlockSizeBytes => MemoryVolume.BlockBytes;

    public ValueTask<NbdIoStatus> ReadAsync(long offsetBytes, Memory<byte> destination, CancellationToken cancellationToken)
    {
        volume.Read(offsetBytes, destination.Span);
        return ValueTask.FromResult(NbdIoStatus.Ok);
    }

    public async ValueTask<NbdIoStatus> WriteAsync(long offsetBytes, ReadOnlyMemory<byte> source, CancellationToken cancellationToken)
    {
        volume.BeginWrite();
        try
        {
            var gate = volume.WriteGate;
            if (gate is not null)
            {
                await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            volume.Write(offsetBytes, source.Span);
            return NbdIoStatus.Ok;
        }
        finally
        {
            volume.EndWrite();
        }
    }

    public ValueTask<NbdIoStatus> WriteZeroesAsync(long offsetBytes, long lengthBytes, bool mayDeallocate, CancellationToken cancellationToken)
    {
        volume.Zero(offsetBytes, lengthBytes, mayDeallocate);
        return ValueTask.FromResult(NbdIoStatus.Ok);
    }

    public ValueTask<NbdIoStatus> TrimAsync(long offsetBytes, long lengthBytes, CancellationToken cancellationToken)
    {
        volume.Zero(offsetBytes, lengthBytes, deallocate: true);
        return ValueTask.FromResult(NbdIoStatus.Ok);
    }

    public ValueTask<NbdIoStatus> FlushAsync(CancellationToken cancellationToken) => ValueTask.FromResult(NbdIoStatus.Ok);

    public ValueTask<(NbdIoStatus Status, IReadOnlyList<NbdExtent> Extents)> GetBlockStatusAsync(long offsetBytes, long lengthBytes, CancellationToken cancellationToken)
    {
        var extents = new List<NbdExtent>();
        var end = offsetBytes + lengthBytes;
        var position = offsetBytes;
        while (position < end)
        {
            var next = Math.Min(end, ((position / MemoryVolume.BlockBytes) + 1) * MemoryVolume.BlockBytes);
            var allocated = volume.IsAllocated(position);
            var length = next - position;
            if (extents.Count > 0 && extents[^1].Hole == !allocated)
            {
                extents[^1] = extents[^1] with { LengthBytes = extents[^1].LengthBytes + length };
            }
            else
            {
                extents.Add(new NbdExtent(length, Hole: !allocated, Zero: !allocated));
            }

            position = next;
        }

        return ValueTask.FromResult<(NbdIoStatus, IReadOnlyList<NbdExtent>)>((NbdIoStatus.Ok, extents));
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            volume.OnDispose();
        }

        return ValueTask.CompletedTask;
    }
}
