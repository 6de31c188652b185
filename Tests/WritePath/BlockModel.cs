using Converge.Client;
using Converge.DataPath;
using Orleans.Runtime;
using Xunit;

namespace Converge.Tests.WritePath;

/// <summary>
/// What the tests know about a volume's blocks: the last ACKNOWLEDGED version of each, and the highest version ever
/// sent (a write that failed or was cut off by a crash may or may not be visible later, never anything older than
/// the acknowledged one). Writers own disjoint blocks (block % writers), so per-block updates never race.
/// </summary>
public sealed class BlockModel(ulong volumeTag, long blockCount)
{
    private readonly long[] _acknowledged = new long[blockCount];
    private readonly long[] _sent = new long[blockCount];
    private long _acknowledgedWrites;
    private long _failedWrites;

    public ulong VolumeTag { get; } = volumeTag;

    public long BlockCount { get; } = blockCount;

    public long AcknowledgedWrites => Interlocked.Read(ref _acknowledgedWrites);

    public long FailedWrites => Interlocked.Read(ref _failedWrites);

    /// <summary>Writes the next version of <paramref name="block"/> and records the outcome; returns the status.</summary>
    public async Task<IoStatus> WriteAsync(VolumeSession volume, long block, byte[] buffer)
    {
        var version = ++_sent[block];
        BlockPattern.Fill(buffer, VolumeTag, block, version);
        IoStatus status;
        try
        {
            status = await volume.WriteAsync(block * BlockPattern.BlockBytes, buffer);
        }
        catch (Exception e) when (e is TimeoutException or OrleansException)
        {
            // No answer is no acknowledgement: the block may hold this version or the acknowledged one.
            status = IoStatus.IoError;
        }

        if (status == IoStatus.Ok)
        {
            _acknowledged[block] = version;
            Interlocked.Increment(ref _acknowledgedWrites);
        }
        else
        {
            Interlocked.Increment(ref _failedWrites);
        }

        return status;
    }

    /// <summary>Writes <paramref name="block"/> until one version is acknowledged (bounded); fails when none is.</summary>
    public async Task WriteAcknowledgedAsync(VolumeSession volume, long block, byte[] buffer)
    {
        var status = IoStatus.IoError;
        for (var attempt = 0; attempt < 5 && status != IoStatus.Ok; attempt++)
        {
            status = await WriteAsync(volume, block, buffer);
        }

        Assert.True(status == IoStatus.Ok, $"block {block}: no write acknowledged in 5 attempts: {status}");
    }

    /// <summary>Reads every block in bounded chunks and checks each against the model; fails naming every bad block.</summary>
    public async Task VerifyAsync(VolumeSession volume, string when)
    {
        const int chunkBlocks = 64;
        var problems = new List<string>();
        for (long first = 0; first < BlockCount; first += chunkBlocks)
        {
            var count = (int)Math.Min(chunkBlocks, BlockCount - first);
            var reply = await ReadWithRetriesAsync(volume, first * BlockPattern.BlockBytes, count * BlockPattern.BlockBytes);
            Assert.True(reply.Status == IoStatus.Ok, $"{when}: reading blocks {first}..{first + count - 1} failed {MaxReadAttempts} times: {reply.Status}");
            for (var i = 0; i < count; i++)
            {
                var block = first + i;
                var problem = BlockPattern.Check(reply.Data.AsSpan(i * BlockPattern.BlockBytes, BlockPattern.BlockBytes), VolumeTag, block, _acknowledged[block], _sent[block]);
                if (problem is not null)
                {
                    problems.Add(problem);
                }
            }
        }

        Assert.True(problems.Count == 0, $"{when}: {problems.Count} blocks wrong: {string.Join("; ", problems.Take(10))}");
    }

    private const int MaxReadAttempts = 5;

    /// <summary>
    /// A read that fails (a mirror timing out on a starved machine) is tried again a bounded number of times: a failed
    /// read is unavailability, which these tests tolerate; wrong data is never tolerated.
    /// </summary>
    private static async Task<VolumeReadReply> ReadWithRetriesAsync(VolumeSession volume, long offsetBytes, int lengthBytes)
    {
        var reply = new VolumeReadReply(IoStatus.IoError, null);
        for (var attempt = 0; attempt < MaxReadAttempts && reply.Status != IoStatus.Ok; attempt++)
        {
            try
            {
                reply = await volume.ReadAsync(offsetBytes, lengthBytes);
            }
            catch (Exception e) when (e is TimeoutException or OrleansException)
            {
                reply = new VolumeReadReply(IoStatus.IoError, null);
            }
        }

        return reply;
    }
}
