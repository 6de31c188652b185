using Converge.Cluster;
using Converge.DataPath;
using Converge.Grains.Cluster;
using Converge.Grains.Controller;
using Converge.Nbd;
using Converge.Nbd.Server;
using Converge.Volumes;
using Microsoft.Extensions.Logging;

namespace Converge.SiloCompute.Nbd;

/// <summary>
/// Serves volumes over NBD from this compute node: every export is the volume controller grain pinned to this node,
/// reached in-process (no cross-process hop between the NBD server and the controller). A read whose blocks the
/// controller has published as current in the RAM cache is answered without a grain call (<see cref="VolumeReadView"/>).
/// </summary>
public sealed partial class GrainNbdBackend(IGrainFactory grains, LocalNode node, VolumeReadViews readViews, ILogger<GrainNbdBackend> logger) : INbdBackend
{
    public async ValueTask<IReadOnlyList<NbdExportInfo>> ListExportsAsync(CancellationToken cancellationToken)
    {
        var volumes = await grains.GetGrain<IVolumeCatalogGrain>(0).ListAsync();
        return volumes.Select(v => new NbdExportInfo(v.Name, Describe(v))).ToArray();
    }

    /// <summary>
    /// NBD_OPT_INFO reads the volume's control-plane record and never attaches: listing or probing a volume must not bump
    /// its epoch, and describes it even while another node holds it (GO is where the attachment rule is enforced).
    /// </summary>
    public async ValueTask<NbdOpenResult> DescribeAsync(string exportName, CancellationToken cancellationToken)
    {
        if (VolumeRules.CheckName(exportName) is not null)
        {
            return NbdOpenResult.Refused(NbdOpenStatus.UnknownExport, $"no volume named '{exportName}'");
        }

        VolumeResult result;
        try
        {
            result = await grains.GetGrain<IVolumeGrain>(exportName).GetAsync();
        }
        catch (Exception e) when (e is OrleansException or TimeoutException)
        {
            return NbdOpenResult.Refused(NbdOpenStatus.Unavailable, $"volume '{exportName}' is unavailable: {e.Message}");
        }

        return result switch
        {
            { Ok: true, Volume: { } v } => NbdOpenResult.Opened(new DescribedExport(v.Name, Describe(v), v.SizeBytes, v.BlockSizeBytes)),
            { Error: VolumeError.NotFound } => NbdOpenResult.Refused(NbdOpenStatus.UnknownExport, $"no volume named '{exportName}'"),
            _ => NbdOpenResult.Refused(NbdOpenStatus.Unavailable, result.Message),
        };
    }

    public async ValueTask<NbdOpenResult> OpenAsync(string exportName, CancellationToken cancellationToken)
    {
        if (VolumeRules.CheckName(exportName) is not null)
        {
            return NbdOpenResult.Refused(NbdOpenStatus.UnknownExport, $"no volume named '{exportName}'");
        }

        var controller = grains.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey(node.Name, exportName));
        // One handle per NBD connection: its close releases exactly this connection's hold on the attachment. It never
        // expires: this silo closes it with the connection, and should the silo die, the controller goes with it.
        var handleId = Guid.NewGuid();
        OpenReply reply;
        try
        {
            reply = await controller.OpenAsync(handleId, HandleExpiry.Never);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException)
        {
            // The open may have happened after all (a timeout while recovery ran long): release it, best effort.
            try
            {
                await controller.CloseAsync(handleId);
            }
            catch (Exception close) when (close is OrleansException or TimeoutException)
            {
                // Nothing more to do from here.
            }

            return NbdOpenResult.Refused(NbdOpenStatus.Unavailable, $"volume '{exportName}' is unavailable: {e.Message}");
        }

        return reply.Error switch
        {
            VolumeError.None => NbdOpenResult.Opened(new GrainNbdExport(controller, handleId, exportName, reply.SizeBytes, reply.BlockSizeBytes, readViews.Get(exportName), CallFailed(exportName))),
            VolumeError.NotFound => NbdOpenResult.Refused(NbdOpenStatus.UnknownExport, reply.Message),
            VolumeError.AttachedElsewhere => NbdOpenResult.Refused(NbdOpenStatus.PolicyRefused, reply.Message),
            _ => NbdOpenResult.Refused(NbdOpenStatus.Unavailable, reply.Message),
        };
    }

    private static string Describe(VolumeInfo volume) => $"Converge volume {volume.Name} ({volume.SizeBytes} bytes)";

    /// <summary>Logs a failed call unless it is the controller being unreachable or slow (expected while a silo fails over).</summary>
    private Action<Exception> CallFailed(string exportName) => e =>
    {
        if (e is not (OrleansException or TimeoutException))
        {
            LogCallFailed(exportName, e);
        }
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "NBD export {Export}: a call into the volume controller failed; its requests get EIO")]
    private partial void LogCallFailed(string export, Exception exception);
}

/// <summary>One NBD connection's view of a volume; closing it releases the connection's hold on the attachment.</summary>
internal sealed class GrainNbdExport : INbdExport
{
    private const int MaxZeroChunkBytes = 1 << 30;

    private readonly IVolumeControllerGrain _controller;
    private readonly Guid _handleId;
    private readonly RequestBatcher<(long Offset, ReadOnlyMemory<byte> Data), IoStatus> _writes;
    private readonly RequestBatcher<(long Offset, int Length), VolumeReadReply> _reads;
    private readonly VolumeReadView _readView;

    public GrainNbdExport(IVolumeControllerGrain controller, Guid handleId, string name, long sizeBytes, int blockSizeBytes, VolumeReadView readView, Action<Exception>? callFailed = null)
    {
        _controller = controller;
        _readView = readView;
        _handleId = handleId;
        Name = name;
        SizeBytes = sizeBytes;
        BlockSizeBytes = blockSizeBytes;
        _writes = new(
            write => controller.WriteAcknowledgedAsync(write.Offset, write.Data, WriteDeadline.FromNow()),
            writes =>
            {
                var offsets = new long[writes.Length];
                var data = new ReadOnlyMemory<byte>[writes.Length];
                for (var i = 0; i < writes.Length; i++)
                {
                    (offsets[i], data[i]) = writes[i];
                }

                return controller.WriteManyAcknowledgedAsync(offsets, data, WriteDeadline.FromNow());
            },
            failed: IoStatus.IoError,
            VolumeBatch.MaxRequests,
            callFailed: callFailed);
        _reads = new(
            read => controller.ReadAsync(read.Offset, read.Length),
            reads =>
            {
                var offsets = new long[reads.Length];
                var lengths = new int[reads.Length];
                for (var i = 0; i < reads.Length; i++)
                {
                    (offsets[i], lengths[i]) = reads[i];
                }

                return controller.ReadManyAsync(offsets, lengths);
            },
            failed: new VolumeReadReply(IoStatus.IoError, null),
            VolumeBatch.MaxRequests,
            callFailed: callFailed);
    }

    public string Name { get; }

    public long SizeBytes { get; }

    public int BlockSizeBytes { get; }

    public ValueTask<NbdIoStatus> ReadAsync(long offsetBytes, Memory<byte> destination, CancellationToken cancellationToken) =>
        _readView.TryRead(offsetBytes, destination.Span) ? ValueTask.FromResult(NbdIoStatus.Ok) : ReadFromControllerAsync(offsetBytes, destination);

    private async ValueTask<NbdIoStatus> ReadFromControllerAsync(long offsetBytes, Memory<byte> destination)
    {
        var reply = await _reads.SubmitAsync((offsetBytes, destination.Length)).ConfigureAwait(false);
        if (reply.Status != IoStatus.Ok)
        {
            return Map(reply.Status);
        }

        reply.Data.AsSpan().CopyTo(destination.Span);
        return NbdIoStatus.Ok;
    }

    public async ValueTask<NbdIoStatus> WriteAsync(long offsetBytes, ReadOnlyMemory<byte> source, CancellationToken cancellationToken) =>
        Map(await _writes.SubmitAsync((offsetBytes, source)).ConfigureAwait(false));

    public async ValueTask<NbdIoStatus> WriteZeroesAsync(long offsetBytes, long lengthBytes, bool mayDeallocate, CancellationToken cancellationToken)
    {
        // Zeroes are logged as tombstones either way; a huge range goes in bounded pieces so no record grows without limit.
        for (var done = 0L; done < lengthBytes; done += MaxZeroChunkBytes)
        {
            var piece = Math.Min(MaxZeroChunkBytes, lengthBytes - done);
            IoStatus status;
            try
            {
                status = await _controller.ZeroAcknowledgedAsync(offsetBytes + done, piece, WriteDeadline.FromNow());
            }
            catch (Exception e) when (IsUnavailable(e))
            {
                return NbdIoStatus.IoError;
            }

            if (status != IoStatus.Ok)
            {
                return Map(status);
            }
        }

        return NbdIoStatus.Ok;
    }

    public ValueTask<NbdIoStatus> TrimAsync(long offsetBytes, long lengthBytes, CancellationToken cancellationToken) =>
        WriteZeroesAsync(offsetBytes, lengthBytes, mayDeallocate: true, cancellationToken);

    // Every write reply already means committed on both mirrors: nothing is left to flush.
    public ValueTask<NbdIoStatus> FlushAsync(CancellationToken cancellationToken) => ValueTask.FromResult(NbdIoStatus.Ok);

    /// <summary>
    /// base:allocation from the controller: a run proven to read as zeros with nothing stored is a hole that reads as
    /// zeros, anything else is data. The answer may cover less than asked; the client asks again for the rest.
    /// </summary>
    public async ValueTask<(NbdIoStatus Status, IReadOnlyList<NbdExtent> Extents)> GetBlockStatusAsync(long offsetBytes, long lengthBytes, CancellationToken cancellationToken)
    {
        AllocationReply reply;
        try
        {
            reply = await _controller.GetAllocationAsync(offsetBytes, lengthBytes);
        }
        catch (Exception e) when (IsUnavailable(e))
        {
            return (NbdIoStatus.IoError, []);
        }

        if (reply.Status != IoStatus.Ok || reply.Runs is not { Length: > 0 } runs)
        {
            return (reply.Status == IoStatus.Ok ? NbdIoStatus.IoError : Map(reply.Status), []);
        }

        var extents = new NbdExtent[runs.Length];
        for (var i = 0; i < runs.Length; i++)
        {
            extents[i] = new NbdExtent(runs[i].LengthBytes, Hole: runs[i].Zero, Zero: runs[i].Zero);
        }

        return (NbdIoStatus.Ok, extents);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _controller.CloseAsync(_handleId);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException)
        {
            // The lease lapses on its own if the close cannot be delivered.
        }
    }

    /// <summary>The controller could not be reached or did not answer in time: the request fails with EIO.</summary>
    private static bool IsUnavailable(Exception e) => e is OrleansException or TimeoutException;

    private static NbdIoStatus Map(IoStatus status) => status switch
    {
        IoStatus.Ok => NbdIoStatus.Ok,
        IoStatus.OutOfRange => NbdIoStatus.Invalid,
        IoStatus.NotAttached => NbdIoStatus.NotPermitted,
        IoStatus.Busy => NbdIoStatus.NoMemory,
        IoStatus.Invalid => NbdIoStatus.Invalid,
        _ => NbdIoStatus.IoError,
    };
}
