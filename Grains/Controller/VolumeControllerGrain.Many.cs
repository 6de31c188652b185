using Converge.DataPath;

namespace Converge.Grains.Controller;

public sealed partial class VolumeControllerGrain
{
    public async Task<IoStatus[]> WriteManyAcknowledgedAsync(long[] offsetsBytes, ReadOnlyMemory<byte>[] data, long notAfterUtcTicks = 0)
    {
        VolumeBatch.Validate(offsetsBytes, data);
        ControllerInstruments.BatchRequests.Record(offsetsBytes.Length, new KeyValuePair<string, object?>("kind", "write"));
        var writes = new Task<IoStatus>[offsetsBytes.Length];
        for (var i = 0; i < writes.Length; i++)
        {
            writes[i] = WriteAcknowledgedAsync(offsetsBytes[i], data[i], notAfterUtcTicks);
        }

        await SettleAsync(writes);
        var statuses = new IoStatus[writes.Length];
        for (var i = 0; i < writes.Length; i++)
        {
            statuses[i] = writes[i].IsCompletedSuccessfully ? writes[i].Result : IoStatus.IoError;
        }

        return statuses;
    }

    public async Task<VolumeReadReply[]> ReadManyAsync(long[] offsetsBytes, int[] lengthsBytes)
    {
        VolumeBatch.Validate(offsetsBytes, lengthsBytes);
        ControllerInstruments.BatchRequests.Record(offsetsBytes.Length, new KeyValuePair<string, object?>("kind", "read"));
        var reads = new Task<VolumeReadReply>[offsetsBytes.Length];
        for (var i = 0; i < reads.Length; i++)
        {
            reads[i] = ReadAsync(offsetsBytes[i], lengthsBytes[i]);
        }

        await SettleAsync(reads);
        var replies = new VolumeReadReply[reads.Length];
        for (var i = 0; i < reads.Length; i++)
        {
            replies[i] = reads[i].IsCompletedSuccessfully ? reads[i].Result : new VolumeReadReply(IoStatus.IoError, null);
        }

        return replies;
    }

    /// <summary>
    /// How long a batch waits for its slowest request: within the caller's 10 s call timeout, so one slow request does
    /// not fail the whole batch, and past the writes' 8 s deadline (<see cref="WriteDeadline"/>), after which no write
    /// reads its caller's bytes any more. A request not done by then is answered IoError, as a call of its own that timed
    /// out would have been; a write may still land later, as such a write may.
    /// </summary>
    private static readonly TimeSpan BatchWait = TimeSpan.FromSeconds(9);

    /// <summary>Waits for every task, at most <see cref="BatchWait"/>; a failed one is that request's own failure, not the batch's.</summary>
    private static async Task SettleAsync(Task[] tasks)
    {
        try
        {
            await Task.WhenAll(tasks).WaitAsync(BatchWait);
        }
        catch (TimeoutException)
        {
            // The unfinished ones are answered IoError by the caller.
        }
        catch (Exception) when (tasks.All(t => t.IsCompleted))
        {
            // Read per task by the caller.
        }
    }
}
