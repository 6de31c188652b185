namespace Converge.Nbd.Protocol;

/// <summary>
/// Wire values of the NBD protocol (fixed newstyle handshake, simple and structured replies), all big-endian.
/// These numbers are frozen by the protocol; a golden test checks them.
/// </summary>
/// <remarks>
/// Handshake:  S: "NBDMAGIC" u64, "IHAVEOPT" u64, handshake flags u16; C: client flags u32.
/// Option:     C: IHAVEOPT u64, option u32, length u32, data.
/// Opt reply:  S: 0x3e889045565a9 u64, option u32, reply type u32, length u32, data.
/// Request:    C: 0x25609513 u32, flags u16, type u16, cookie u64, offset u64, length u32, [payload for WRITE].
/// Simple:     S: 0x67446698 u32, error u32, cookie u64, [data for a successful READ].
/// Structured: S: 0x668e33ef u32, flags u16, type u16, cookie u64, length u32, payload.
/// </remarks>
public static class NbdWire
{
    public const ulong InitPasswd = 0x4e42444d41474943; // "NBDMAGIC"
    public const ulong OptionMagic = 0x49484156454F5054; // "IHAVEOPT"
    public const ulong OptionReplyMagic = 0x3e889045565a9;
    public const uint RequestMagic = 0x25609513;
    public const uint SimpleReplyMagic = 0x67446698;
    public const uint StructuredReplyMagic = 0x668e33ef;

    public const int RequestHeaderBytes = 28;
    public const int SimpleReplyHeaderBytes = 16;
    public const int StructuredReplyHeaderBytes = 20;
    public const int OptionHeaderBytes = 16;
    public const int OptionReplyHeaderBytes = 20;

    /// <summary>Longest string the protocol allows (export names, messages).</summary>
    public const int MaxStringBytes = 4096;
}

/// <summary>Handshake flags (server) and client flags.</summary>
[Flags]
public enum NbdHandshakeFlags : ushort
{
    None = 0,
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

[Flags]
public enum NbdClientFlags : uint
{
    None = 0,
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

/// <summary>Transmission flags sent with the export size.</summary>
[Flags]
public enum NbdTransmissionFlags : ushort
{
    None = 0,
    HasFlags = 1 << 0,
    ReadOnly = 1 << 1,
    SendFlush = 1 << 2,
    SendFua = 1 << 3,
    Rotational = 1 << 4,
    SendTrim = 1 << 5,
    SendWriteZeroes = 1 << 6,
    SendDf = 1 << 7,
    CanMultiConn = 1 << 8,
    SendResize = 1 << 9,
    SendCache = 1 << 10,
    SendFastZero = 1 << 11,
}

public enum NbdOption : uint
{
    ExportName = 1,
    Abort = 2,
    List = 3,
    PeekExport = 4,
    StartTls = 5,
    Info = 6,
    Go = 7,
    StructuredReply = 8,
    ListMetaContext = 9,
    SetMetaContext = 10,
    ExtendedHeaders = 11,
}

public enum NbdOptionReply : uint
{
    Ack = 1,
    Server = 2,
    Info = 3,
    MetaContext = 4,
    ErrUnsupported = 0x80000000 + 1,
    ErrPolicy = 0x80000000 + 2,
    ErrInvalid = 0x80000000 + 3,
    ErrPlatform = 0x80000000 + 4,
    ErrTlsRequired = 0x80000000 + 5,
    ErrUnknown = 0x80000000 + 6,
    ErrShutdown = 0x80000000 + 7,
    ErrBlockSizeRequired = 0x80000000 + 8,
    ErrTooBig = 0x80000000 + 9,
}

public enum NbdInfoType : ushort
{
    Export = 0,
    Name = 1,
    Description = 2,
    BlockSize = 3,
}

public enum NbdCommand : ushort
{
    Read = 0,
    Write = 1,
    Disconnect = 2,
    Flush = 3,
    Trim = 4,
    Cache = 5,
    WriteZeroes = 6,
    BlockStatus = 7,
}

[Flags]
public enum NbdCommandFlags : ushort
{
    None = 0,
    Fua = 1 << 0,
    NoHole = 1 << 1,
    DontFragment = 1 << 2,
    RequestOne = 1 << 3,
    FastZero = 1 << 4,
}

public enum NbdReplyType : ushort
{
    None = 0,
    OffsetData = 1,
    OffsetHole = 2,
    BlockStatus = 5,
    Error = 0x8000 + 1,
    ErrorOffset = 0x8000 + 2,
}

/// <summary>Error values carried in replies (protocol numbers, not the host's errno).</summary>
public enum NbdError : uint
{
    None = 0,
    NotPermitted = 1,
    IoError = 5,
    NoMemory = 12,
    Invalid = 22,
    NoSpace = 28,
    Overflow = 75,
    NotSupported = 95,
    Shutdown = 108,
}

/// <summary>The <c>base:allocation</c> metadata context and its status bits.</summary>
public static class NbdAllocationContext
{
    public const string Name = "base:allocation";
    public const string Namespace = "base:";
    public const uint Id = 1;
    public const uint StateHole = 1;
    public const uint StateZero = 2;
}
