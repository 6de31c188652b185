using Converge.Cluster;
using Converge.DataPath;
using Converge.Log;
using Xunit;

namespace Converge.Tests.WritePath;

/// <summary>
/// The batched append a storage silo takes from a volume's writer, called on a real silo: each record of the batch is
/// committed or refused on its own, in order, and bytes that are not a whole record are refused without touching the
/// records before them.
/// </summary>
[Collection(WritePathCollection.Name)]
public sealed class AppendBatchTests(WritePathCluster cluster)
{
    [Fact]
    public async Task EachRecordOfABatch_IsCommittedOrRefusedOnItsOwn_AndCommittedOnesReadBack()
    {
        var volumeId = Guid.NewGuid();
        var segmentId = Guid.NewGuid();
        var payloads = Enumerable.Range(0, 3).Select(i => Enumerable.Repeat((byte)(0x41 + i), 4096).ToArray()).ToArray();
        var records = new List<byte[]>();
        for (var i = 0; i < payloads.Length; i++)
        {
            using var record = LogRecord.EncodePooled(LogRecordHeader.ForWrite(volumeId, new Lsn(1, (ulong)i + 1), segmentId, (ulong)i * 4096, 4096), payloads[i]);
            records.Add(record.Span.ToArray());
        }

        // The middle record's payload is damaged after encoding: its CRC no longer holds.
        records[1][LogRecord.HeaderLengthBytes + 100] ^= 0xFF;
        var batch = records.SelectMany(r => r).Concat(new byte[] { 1, 2, 3 }).ToArray();
        var segment = cluster.Grains.GetGrain<ILogSegmentGrain>(NodeRoles.PinnedKey("storage-1", segmentId.ToString("N")));

        var statuses = await segment.AppendCommittedBatchAsync(batch);

        Assert.Equal([MirrorStatus.Ok, MirrorStatus.Invalid, MirrorStatus.Ok, MirrorStatus.Invalid], statuses);
        foreach (var i in new[] { 0, 2 })
        {
            var read = await segment.ReadAsync(new Lsn(1, (ulong)i + 1), (ulong)i * 4096, 4096);
            Assert.Equal(MirrorStatus.Ok, read.Status);
            Assert.Equal(payloads[i], read.Data);
        }

        Assert.Equal(MirrorStatus.Gone, (await segment.ReadAsync(new Lsn(1, 2), 4096, 4096)).Status);
        var entries = await segment.GetEntriesAsync();
        Assert.Equal([new Lsn(1, 1), new Lsn(1, 3)], entries.Entries.Select(e => e.Lsn));
    }
}
