namespace Converge.Nbd.Server;

/// <summary>Limits of one <see cref="NbdServer"/>. Every resource a client can make the server hold is bounded here.</summary>
public sealed class NbdServerOptions
{
    /// <summary>Connections served at once; further connections are accepted and closed at once.</summary>
    public int MaxConnections { get; init; } = 256;

    /// <summary>Time a client has from connecting to entering transmission; then it is disconnected.</summary>
    public TimeSpan HandshakeDeadline { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Requests one connection may have dispatched and unanswered; the reader stops reading past this.</summary>
    public int MaxInFlightRequestsPerConnection { get; init; } = 64;

    /// <summary>Largest READ or WRITE payload (advertised as the maximum block size).</summary>
    public int MaxPayloadBytes { get; init; } = 32 * 1024 * 1024;

    /// <summary>
    /// An oversized WRITE up to this many payload bytes is read and discarded, then refused with EINVAL, so the
    /// connection survives; a larger one is answered by a hard disconnect (the spec allows either).
    /// </summary>
    public long MaxDiscardedPayloadBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>Largest option the handshake reads; longer ones get NBD_REP_ERR_TOO_BIG and a disconnect.</summary>
    public int MaxOptionBytes { get; init; } = 64 * 1024;

    /// <summary>Options one handshake may send before the server gives up on it.</summary>
    public int MaxOptionsPerHandshake { get; init; } = 1024;

    /// <summary>Payload bytes one connection may hold in buffers at once (reads and writes in flight).</summary>
    public long MaxBufferedBytesPerConnection { get; init; } = 96L * 1024 * 1024;

    /// <summary>Payload bytes all connections together may hold in buffers at once.</summary>
    public long MaxBufferedBytes { get; init; } = 1024L * 1024 * 1024;

    /// <summary>How long a disconnecting connection waits for its in-flight requests before it is cut.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Throws when the options contradict each other, so a bad configuration fails at start.</summary>
    public void Validate()
    {
        Require(MaxConnections > 0, nameof(MaxConnections));
        Require(HandshakeDeadline > TimeSpan.Zero, nameof(HandshakeDeadline));
        Require(MaxInFlightRequestsPerConnection > 0, nameof(MaxInFlightRequestsPerConnection));
        Require(MaxPayloadBytes >= 4096, nameof(MaxPayloadBytes));
        Require(MaxDiscardedPayloadBytes >= 0, nameof(MaxDiscardedPayloadBytes));
        Require(MaxOptionBytes >= 1024, nameof(MaxOptionBytes));
        Require(MaxOptionsPerHandshake > 0, nameof(MaxOptionsPerHandshake));
        Require(MaxBufferedBytesPerConnection >= MaxPayloadBytes + 64L, nameof(MaxBufferedBytesPerConnection));
        Require(MaxBufferedBytes >= MaxBufferedBytesPerConnection, nameof(MaxBufferedBytes));
        Require(DrainTimeout > TimeSpan.Zero, nameof(DrainTimeout));
    }

    private static void Require(bool condition, string name)
    {
        if (!condition)
        {
            throw new ArgumentOutOfRangeException(name, "NBD server option out of range.");
        }
    }
}
