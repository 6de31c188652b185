using Converge.Nbd.Protocol;
using Xunit;

namespace Converge.Tests.Nbd;

/// <summary>Freezes the protocol numbers: they are fixed by the NBD specification and must never drift.</summary>
public sealed class NbdWireValueTests
{
    [Fact]
    public void WireValues_MatchTheSpecification()
    {
        Assert.Equal(0x4e42444d41474943ul, NbdWire.InitPasswd);
        Assert.Equal(0x49484156454F5054ul, NbdWire.OptionMagic);
        Assert.Equal(0x3e889045565a9ul, NbdWire.OptionReplyMagic);
        Assert.Equal(0x25609513u, NbdWire.RequestMagic);
        Assert.Equal(0x67446698u, NbdWire.SimpleReplyMagic);
        Assert.Equal(0x668e33efu, NbdWire.StructuredReplyMagic);
        Assert.Equal([1u, 2, 3, 6, 7, 8, 9, 10], new[] { NbdOption.ExportName, NbdOption.Abort, NbdOption.List, NbdOption.Info, NbdOption.Go, NbdOption.StructuredReply, NbdOption.ListMetaContext, NbdOption.SetMetaContext }.Select(o => (uint)o));
        Assert.Equal(0x80000001u, (uint)NbdOptionReply.ErrUnsupported);
        Assert.Equal(0x80000002u, (uint)NbdOptionReply.ErrPolicy);
        Assert.Equal(0x80000003u, (uint)NbdOptionReply.ErrInvalid);
        Assert.Equal(0x80000006u, (uint)NbdOptionReply.ErrUnknown);
        Assert.Equal(0x80000007u, (uint)NbdOptionReply.ErrShutdown);
        Assert.Equal(0x80000009u, (uint)NbdOptionReply.ErrTooBig);
        Assert.Equal(0x09ed, (int)(NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua | NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.CanMultiConn | NbdTransmissionFlags.SendFastZero | NbdTransmissionFlags.SendDf));
        Assert.Equal([0, 1, 2, 3, 4, 6, 7], new[] { NbdCommand.Read, NbdCommand.Write, NbdCommand.Disconnect, NbdCommand.Flush, NbdCommand.Trim, NbdCommand.WriteZeroes, NbdCommand.BlockStatus }.Select(c => (int)c));
        Assert.Equal([1, 2, 4, 8, 16], new[] { NbdCommandFlags.Fua, NbdCommandFlags.NoHole, NbdCommandFlags.DontFragment, NbdCommandFlags.RequestOne, NbdCommandFlags.FastZero }.Select(f => (int)f));
        Assert.Equal([0, 1, 5, 0x8001], new[] { NbdReplyType.None, NbdReplyType.OffsetData, NbdReplyType.BlockStatus, NbdReplyType.Error }.Select(t => (int)t));
        Assert.Equal([1u, 5, 12, 22, 28, 95, 108], new[] { NbdError.NotPermitted, NbdError.IoError, NbdError.NoMemory, NbdError.Invalid, NbdError.NoSpace, NbdError.NotSupported, NbdError.Shutdown }.Select(e => (uint)e));
    }
}
