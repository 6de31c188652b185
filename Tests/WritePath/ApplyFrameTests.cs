using System.Buffers.Binary;
using Converge.Grains.DataChannel;
using Converge.Storage;
using Xunit;

namespace Converge.Tests.WritePath;

/// <summary>
/// The apply frame's body: writes survive the round trip with their payloads pointing into the body, and every body
/// the protocol never sends is refused with a reason instead of being half-applied.
/// </summary>
public sealed class ApplyFrameTests
{
    private const int BlockSize = 4096;
    private static readonly Guid Volume = Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

    [Fact]
    public void DataAndZeroWrites_RoundTrip()
    {
        var payload = Enumerable.Range(0, 2 * BlockSize).Select(i => (byte)(i * 7)).ToArray();
        ExtentWrite[] writes =
        [
            ExtentWrite.Data(Volume, 130, new Lsn(3, 41), payload, BlockSize),
            ExtentWrite.Zero(Volume, 200, 17, new Lsn(uint.MaxValue, ulong.MaxValue)),
        ];

        var body = Encode(writes, group: 2);
        var request = ApplyFrame.TryDecode(body, out var error);

        Assert.Null(error);
        Assert.NotNull(request);
        Assert.Equal((Volume, 2, BlockSize), (request.VolumeId, request.Group, request.BlockSizeBytes));
        Assert.Equal(2, request.Writes.Length);
        for (var i = 0; i < writes.Length; i++)
        {
            var (sent, got) = (writes[i], request.Writes[i]);
            Assert.Equal((sent.VolumeId, sent.BlockIndex, sent.BlockCount, sent.Lsn, sent.Kind), (got.VolumeId, got.BlockIndex, got.BlockCount, got.Lsn, got.Kind));
            Assert.Equal(sent.Payload.ToArray(), got.Payload.ToArray());
        }

        // The payload is a view of the body, not a copy.
        body[ApplyFrame.HeaderLengthBytes + ApplyFrame.WriteHeaderLengthBytes] ^= 0xFF;
        Assert.Equal((byte)(payload[0] ^ 0xFF), request.Writes[0].Payload.Span[0]);
    }

    [Theory]
    [InlineData("shorter than its header")]
    [InlineData("reserved header bytes")]
    [InlineData("more writes than fit")]
    [InlineData("unknown kind")]
    [InlineData("reserved write bytes")]
    [InlineData("payload past the end")]
    [InlineData("zero blocks")]
    [InlineData("bytes after the last write")]
    public void BodiesTheProtocolNeverSends_AreRefused(string damage)
    {
        var body = Encode([ExtentWrite.Data(Volume, 1, new Lsn(1, 1), new byte[BlockSize], BlockSize)], group: 0);
        var write = ApplyFrame.HeaderLengthBytes;
        switch (damage)
        {
            case "shorter than its header":
                body = body[..(ApplyFrame.HeaderLengthBytes - 1)];
                break;
            case "reserved header bytes":
                body[30] = 1;
                break;
            case "more writes than fit":
                BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(24), 1000);
                break;
            case "unknown kind":
                body[write] = 9;
                break;
            case "reserved write bytes":
                body[write + 2] = 1;
                break;
            case "payload past the end":
                BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(write + 4), 2);
                break;
            case "zero blocks":
                BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(write + 4), 0);
                break;
            default:
                body = [.. body, 0];
                break;
        }

        Assert.Null(ApplyFrame.TryDecode(body, out var error));
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Fact]
    public void MoreWritesThanAStoreTakes_AreRefused_EvenWhenTheyFitTheBody()
    {
        var count = ApplyFrame.MaxWrites + 1;
        var body = new byte[ApplyFrame.HeaderLengthBytes + (count * ApplyFrame.WriteHeaderLengthBytes)];
        Volume.TryWriteBytes(body, bigEndian: true, out _);
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(20), BlockSize);
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(24), count);
        for (var i = 0; i < count; i++)
        {
            var write = body.AsSpan(ApplyFrame.HeaderLengthBytes + (i * ApplyFrame.WriteHeaderLengthBytes));
            write[0] = (byte)ExtentWriteKind.Zero;
            BinaryPrimitives.WriteInt32LittleEndian(write[4..], 1);
            BinaryPrimitives.WriteInt64LittleEndian(write[8..], i);
            BinaryPrimitives.WriteUInt64LittleEndian(write[24..], 1);
        }

        Assert.Null(ApplyFrame.TryDecode(body, out var error));
        Assert.Contains($"at most {ApplyFrame.MaxWrites}", error);

        // One fewer is a body the protocol sends.
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(24), count - 1);
        Assert.Equal(count - 1, ApplyFrame.TryDecode(body.AsMemory(0, body.Length - ApplyFrame.WriteHeaderLengthBytes), out _)!.Writes.Length);
    }

    [Fact]
    public void Replies_RoundTrip_AndLongMessagesAreCut()
    {
        var reply = new ExtentApplyReply(ExtentStatus.Invalid, 5, 7, "extent 3 is not in placement group 1 of 64");
        Assert.Equal(reply, ApplyFrame.TryDecodeReply(ApplyFrame.EncodeReply(reply)));

        var body = ApplyFrame.EncodeReply(new ExtentApplyReply(ExtentStatus.Faulted, 0, 0, new string('x', 5000)));
        Assert.Equal(ApplyFrame.ReplyHeaderLengthBytes + ApplyFrame.MaxReplyMessageBytes, body.Length);
        Assert.Equal(ExtentStatus.Faulted, ApplyFrame.TryDecodeReply(body)!.Status);

        body[0] = 3;
        Assert.Null(ApplyFrame.TryDecodeReply(body));
        Assert.Null(ApplyFrame.TryDecodeReply(new byte[ApplyFrame.ReplyHeaderLengthBytes - 1]));
    }

    [Fact]
    public void WritesBeyondOneFrame_AreRefusedBeforeEncoding()
    {
        var big = new byte[DataFrameHeader.MaxApplyBodyBytes];
        var writes = new[] { ExtentWrite.Data(Volume, 0, new Lsn(1, 1), big, BlockSize) };

        Assert.Throws<ArgumentOutOfRangeException>(() => ApplyFrame.EncodedLength(writes));
    }

    private static byte[] Encode(IReadOnlyList<ExtentWrite> writes, int group)
    {
        var body = new byte[ApplyFrame.EncodedLength(writes)];
        Assert.Equal(body.Length, ApplyFrame.Encode(body, Volume, group, BlockSize, writes));
        return body;
    }
}
