using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Grains.DataChannel;
using Converge.Log;
using ExtentApplyReply = Converge.Storage.ExtentApplyReply;
using ExtentBlock = Converge.Storage.ExtentBlock;
using ExtentStatus = Converge.Storage.ExtentStatus;
using ExtentWrite = Converge.Storage.ExtentWrite;
using IExtentReplicaGrain = Converge.Storage.IExtentReplicaGrain;
using Xunit;
using static Converge.Tests.WritePath.DataFrameSocket;

namespace Converge.Tests.WritePath;

/// <summary>
/// The data channel of a real storage silo (storage-1, which the shared cluster's other tests never kill), spoken to by hand: appends are committed or refused record by record and
/// read back through the segment grain; a client that names another node, or sends bytes that are not frames, is
/// disconnected and the node goes on serving.
/// </summary>
[Collection(WritePathCollection.Name)]
public sealed partial class DataChannelTests(WritePathCluster cluster)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task AppendFrame_CommitsEachRecordOnItsOwn_AndTheSegmentGrainReadsThemBack()
    {
        var volumeId = Guid.NewGuid();
        var segmentId = Guid.NewGuid();
        var payloads = Enumerable.Range(0, 3).Select(i => Enumerable.Repeat((byte)(0x61 + i), 4096).ToArray()).ToArray();
        var records = new List<byte[]>();
        for (var i = 0; i < payloads.Length; i++)
        {
            using var record = LogRecord.EncodePooled(LogRecordHeader.ForWrite(volumeId, new Lsn(1, (ulong)i + 1), segmentId, (ulong)i * 4096, 4096), payloads[i]);
            records.Add(record.Span.ToArray());
        }

        // The middle record is damaged after encoding, and three stray bytes follow the last.
        records[1][LogRecord.HeaderLengthBytes + 7] ^= 0x01;
        var body = records.SelectMany(r => r).Concat(new byte[] { 9, 9, 9 }).ToArray();

        using var socket = await ConnectAsync("storage-1");
        Assert.Equal(HelloStatus.Ok, await HelloAsync(socket, "storage-1"));
        await SendFrameAsync(socket, DataFrameType.Append, 77, body);
        var (header, reply) = await ReadFrameAsync(socket);

        Assert.Equal(DataFrameType.AppendReply, header.Type);
        Assert.Equal(77UL, header.RequestId);
        Assert.Equal([MirrorStatus.Ok, MirrorStatus.Invalid, MirrorStatus.Ok, MirrorStatus.Invalid], reply.Select(b => (MirrorStatus)b));
        var segment = cluster.Grains.GetGrain<ILogSegmentGrain>(NodeRoles.PinnedKey("storage-1", segmentId.ToString("N")));
        foreach (var i in new[] { 0, 2 })
        {
            var read = await segment.ReadAsync(new Lsn(1, (ulong)i + 1), (ulong)i * 4096, 4096);
            Assert.Equal(MirrorStatus.Ok, read.Status);
            Assert.Equal(payloads[i], read.Data);
        }

        Assert.Equal(MirrorStatus.Gone, (await segment.ReadAsync(new Lsn(1, 2), 4096, 4096)).Status);
        Assert.Equal([new Lsn(1, 1), new Lsn(1, 3)], (await segment.GetEntriesAsync()).Entries.Select(e => e.Lsn));
    }

    [Fact]
    public async Task ApplyFrame_IsDurableOnTheReplica_AndOneThatContradictsItChangesNothing()
    {
        const int blockSize = 4096;
        var volumeId = Guid.NewGuid();
        var replica = cluster.Grains.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key("storage-1", volumeId, 0));
        var data = Enumerable.Range(0, 2 * blockSize).Select(i => (byte)(i % 251)).ToArray();
        using var socket = await ConnectAsync("storage-1");
        Assert.Equal(HelloStatus.Ok, await HelloAsync(socket, "storage-1"));

        // Block 1024 starts extent 1, which belongs to group 1: the whole apply is refused, its valid write included.
        ExtentWrite[] mixed =
        [
            ExtentWrite.Data(volumeId, 8, new Converge.Storage.Lsn(1, 1), data, blockSize),
            ExtentWrite.Data(volumeId, 1024, new Converge.Storage.Lsn(1, 2), data, blockSize),
        ];
        var refused = await ApplyAsync(socket, 40, volumeId, mixed);
        Assert.Equal(ExtentStatus.Invalid, refused.Status);
        Assert.Contains("group", refused.Message);

        // A body that does not parse is answered, and the connection goes on serving.
        var garbage = new byte[ApplyFrame.HeaderLengthBytes + 5];
        await SendFrameAsync(socket, DataFrameType.Apply, 41, garbage);
        var (garbageHeader, garbageReply) = await ReadFrameAsync(socket);
        Assert.Equal((DataFrameType.ApplyReply, 41UL), (garbageHeader.Type, garbageHeader.RequestId));
        Assert.Contains("malformed apply", ApplyFrame.TryDecodeReply(garbageReply)!.Message);

        var unwritten = await replica.ReadBlocksAsync(blockSize, 8, 2);
        Assert.All(unwritten.Blocks, b => Assert.Equal(ExtentBlock.Unwritten, b.State));

        ExtentWrite[] valid =
        [
            ExtentWrite.Data(volumeId, 8, new Converge.Storage.Lsn(1, 1), data, blockSize),
            ExtentWrite.Zero(volumeId, 20, 3, new Converge.Storage.Lsn(1, 2)),
        ];
        var applied = await ApplyAsync(socket, 42, volumeId, valid);
        Assert.Equal((ExtentStatus.Ok, 5, 0), (applied.Status, applied.BlocksApplied, applied.BlocksSkipped));

        var read = await replica.ReadBlocksAsync(blockSize, 8, 2);
        Assert.Equal(data, read.Data);
        Assert.All(read.Blocks, b => Assert.Equal((ExtentBlock.Data, new Lsn(1, 1)), (b.State, b.Lsn)));
        Assert.All((await replica.ReadBlocksAsync(blockSize, 20, 3)).Blocks, b => Assert.Equal(ExtentBlock.Zero, b.State));

        // The same apply again is a duplicate: every block skipped.
        var again = await ApplyAsync(socket, 43, volumeId, valid);
        Assert.Equal((ExtentStatus.Ok, 0, 5), (again.Status, again.BlocksApplied, again.BlocksSkipped));
    }

    private static async Task<ExtentApplyReply> ApplyAsync(Socket socket, ulong requestId, Guid volumeId, ExtentWrite[] writes)
    {
        var body = new byte[ApplyFrame.EncodedLength(writes)];
        ApplyFrame.Encode(body, volumeId, 0, 4096, writes);
        await SendFrameAsync(socket, DataFrameType.Apply, requestId, body);
        var (header, reply) = await ReadFrameAsync(socket);
        Assert.Equal((DataFrameType.ApplyReply, requestId), (header.Type, header.RequestId));
        return ApplyFrame.TryDecodeReply(reply) ?? throw new InvalidDataException("a malformed apply reply");
    }

    [Theory]
    [InlineData(1, HelloStatus.Ok)]
    [InlineData(2, HelloStatus.Ok)]
    [InlineData(0, HelloStatus.UnsupportedVersion)]
    [InlineData(3, HelloStatus.UnsupportedVersion)]
    public async Task Hello_AcceptsTheVersionsANodeSpeaks_AndRefusesOthers(ushort version, HelloStatus expected)
    {
        using var socket = await ConnectAsync("storage-1");
        var body = HelloBody("storage-1");
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(body, version);

        await SendFrameAsync(socket, DataFrameType.Hello, 0, body);
        var (header, reply) = await ReadFrameAsync(socket);

        Assert.Equal(DataFrameType.HelloReply, header.Type);
        Assert.Equal(expected, (HelloStatus)Assert.Single(reply));
        if (expected != HelloStatus.Ok)
        {
            Assert.True(await ClosedByPeerAsync(socket), $"the node kept a connection of version {version}");
        }
    }

    [Fact]
    public async Task HelloForAnotherNode_IsRefused_AndTheConnectionClosed()
    {
        using var socket = await ConnectAsync("storage-1");

        Assert.Equal(HelloStatus.WrongNode, await HelloAsync(socket, "storage-3"));
        Assert.True(await ClosedByPeerAsync(socket), "the node kept a connection that named another node");
    }

    [Theory]
    [InlineData("unknown frame type")]
    [InlineData("oversized append")]
    [InlineData("append before hello")]
    [InlineData("reserved bytes set")]
    public async Task BytesThatAreNotFrames_CloseTheConnection_AndTheNodeServesTheNext(string damage)
    {
        using (var socket = await ConnectAsync("storage-1"))
        {
            var header = new byte[DataFrameHeader.Length];
            switch (damage)
            {
                case "unknown frame type":
                    Assert.Equal(HelloStatus.Ok, await HelloAsync(socket, "storage-1"));
                    new DataFrameHeader(0, (DataFrameType)42, 1).Write(header);
                    break;
                case "oversized append":
                    Assert.Equal(HelloStatus.Ok, await HelloAsync(socket, "storage-1"));
                    new DataFrameHeader(DataFrameHeader.MaxAppendBodyBytes + 1, DataFrameType.Append, 1).Write(header);
                    break;
                case "append before hello":
                    new DataFrameHeader(0, DataFrameType.Append, 1).Write(header);
                    break;
                default:
                    Assert.Equal(HelloStatus.Ok, await HelloAsync(socket, "storage-1"));
                    new DataFrameHeader(0, DataFrameType.Append, 1).Write(header);
                    header[6] = 1;
                    break;
            }

            await socket.SendAsync(header);
            Assert.True(await ClosedByPeerAsync(socket), $"the node kept a connection after: {damage}");
        }

        // The node still serves: a fresh connection appends a record.
        using var next = await ConnectAsync("storage-1");
        Assert.Equal(HelloStatus.Ok, await HelloAsync(next, "storage-1"));
        using var record = LogRecord.EncodePooled(LogRecordHeader.ForWrite(Guid.NewGuid(), new Lsn(1, 1), Guid.NewGuid(), 0, 4096), new byte[4096]);
        await SendFrameAsync(next, DataFrameType.Append, 5, record.Span.ToArray());
        var (_, reply) = await ReadFrameAsync(next);
        Assert.Equal([(byte)MirrorStatus.Ok], reply);
    }

    [Fact]
    public void FrameHeader_RoundTrips_AndRefusesWhatTheProtocolNeverSends()
    {
        var bytes = new byte[DataFrameHeader.Length];
        new DataFrameHeader(4096, DataFrameType.Append, ulong.MaxValue - 1).Write(bytes);
        Assert.Equal(new DataFrameHeader(4096, DataFrameType.Append, ulong.MaxValue - 1), DataFrameHeader.TryRead(bytes, out var error));
        Assert.Null(error);

        new DataFrameHeader(DataFrameHeader.MaxHelloBodyBytes + 1, DataFrameType.Hello, 0).Write(bytes);
        Assert.Null(DataFrameHeader.TryRead(bytes, out error));
        Assert.Contains("Hello", error);

        new DataFrameHeader(-1, DataFrameType.AppendReply, 0).Write(bytes);
        Assert.Null(DataFrameHeader.TryRead(bytes, out error));

        new DataFrameHeader(0, (DataFrameType)0, 0).Write(bytes);
        Assert.Null(DataFrameHeader.TryRead(bytes, out error));
        Assert.Contains("unknown frame type", error);
    }

    /// <summary>The node's data endpoint, from the line its silo logs when it starts listening (the newest start).</summary>
    private IPEndPoint EndpointOf(string node)
    {
        var text = File.ReadAllText(cluster.Cluster.Local.LogPath(node));
        var found = ListeningLine().Matches(text);
        Assert.True(found.Count > 0, $"{node} logged no data-channel endpoint");
        return IPEndPoint.Parse(found[^1].Groups[1].Value);
    }

    private async Task<Socket> ConnectAsync(string node)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(Patience);
        await socket.ConnectAsync(EndpointOf(node), timeout.Token);
        return socket;
    }

    private static async Task<HelloStatus> HelloAsync(Socket socket, string node)
    {
        await SendFrameAsync(socket, DataFrameType.Hello, 0, HelloBody(node));
        var (header, reply) = await ReadFrameAsync(socket);
        Assert.Equal(DataFrameType.HelloReply, header.Type);
        return (HelloStatus)Assert.Single(reply);
    }

    /// <summary>True when the peer closes the connection (end of stream or reset) within <see cref="Patience"/>; nothing else may arrive.</summary>
    private static async Task<bool> ClosedByPeerAsync(Socket socket)
    {
        using var timeout = new CancellationTokenSource(Patience);
        try
        {
            var read = await socket.ReceiveAsync(new byte[64], SocketFlags.None, timeout.Token);
            return read == 0;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [GeneratedRegex(@"Data channel listening on (\S+)")]
    private static partial Regex ListeningLine();
}
