using Converge.Cluster;
using Converge.DataPath;
using Converge.Volumes;

namespace Converge.Client;

/// <summary>
/// Block I/O on one volume for .NET applications, tests and benchmarks: the volume is attached to the chosen compute
/// node while the handle is open. Every completed write is acknowledged (committed on two storage mirrors).
/// Dispose the handle to release the attachment.
/// </summary>
public sealed class VolumeHandle : IAsyncDisposable
{
    private readonly IVolumeControllerGrain _controller;
    private int _closed;

    private VolumeHandle(IVolumeControllerGrain controller, string name, string node, OpenReply reply)
    {
        _controller = controller;
        Name = name;
        Node = node;
        SizeBytes = reply.SizeBytes;
        BlockSizeBytes = reply.BlockSizeBytes;
        Epoch = reply.Epoch;
    }

    public string Name { get; }

    public string Node { get; }

    public long SizeBytes { get; }

    public int BlockSizeBytes { get; }

    public ulong Epoch { get; }

    /// <summary>Attaches <paramref name="volumeName"/> on <paramref name="computeNode"/>; refusals are thrown as <see cref="VolumeIoException"/>.</summary>
    public static async Task<VolumeHandle> OpenAsync(IClusterClient cluster, string volumeName, string computeNode)
    {
        if (VolumeRules.CheckName(volumeName) is { } nameError)
        {
            throw new ArgumentException(nameError, nameof(volumeName));
        }

        if (!computeNode.StartsWith(NodeRoles.Compute + "-", StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{computeNode}' is not a compute node (compute-N)", nameof(computeNode));
        }

        var controller = cluster.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey(computeNode, volumeName));
        var reply = await controller.OpenAsync();
        if (reply.Error != VolumeError.None)
        {
            throw new VolumeIoException(reply.Error.ToString(), reply.Message);
        }

        return new VolumeHandle(controller, volumeName, computeNode, reply);
    }

    /// <summary>
    /// Writes <paramref name="data"/> at <paramref name="offsetBytes"/>; completes when both mirrors committed it. A write
    /// that failed or timed out may have landed, but never after a write issued once it had failed (<see cref="WriteDeadline"/>).
    /// </summary>
    public Task<IoStatus> WriteAsync(long offsetBytes, ReadOnlyMemory<byte> data) =>
        _controller.WriteAcknowledgedAsync(offsetBytes, data, WriteDeadline.FromNow());

    /// <summary>Makes a range read as zeros (logged, mirrored and acknowledged like a write).</summary>
    public Task<IoStatus> ZeroAsync(long offsetBytes, long lengthBytes) =>
        _controller.ZeroAcknowledgedAsync(offsetBytes, lengthBytes, WriteDeadline.FromNow());

    public Task<VolumeReadReply> ReadAsync(long offsetBytes, int lengthBytes) => _controller.ReadAsync(offsetBytes, lengthBytes);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            await _controller.CloseAsync();
        }
    }
}

/// <summary>A volume could not be opened for I/O (unknown, attached elsewhere, no storage).</summary>
public sealed class VolumeIoException(string error, string message) : Exception(message)
{
    public string Error { get; } = error;
}
