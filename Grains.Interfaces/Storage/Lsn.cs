namespace Converge.Storage;

/// <summary>
/// Log sequence number: the volume epoch (bumped on every attach) and a per-volume sequence assigned once by the
/// write grain. Ordered lexicographically, epoch first. Every merge keeps the highest and treats an equal LSN as a
/// duplicate; <see cref="None"/> (0, 0) means "never written" and is lower than every assigned LSN.
/// </summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.Lsn")]
public readonly struct Lsn : IEquatable<Lsn>, IComparable<Lsn>
{
    public static readonly Lsn None = default;

    public Lsn(uint epoch, ulong sequence)
    {
        Epoch = epoch;
        Sequence = sequence;
    }

    [Id(0)]
    public uint Epoch { get; }

    [Id(1)]
    public ulong Sequence { get; }

    public bool IsNone => Epoch == 0 && Sequence == 0;

    public int CompareTo(Lsn other)
    {
        var byEpoch = Epoch.CompareTo(other.Epoch);
        return byEpoch != 0 ? byEpoch : Sequence.CompareTo(other.Sequence);
    }

    public bool Equals(Lsn other) => Epoch == other.Epoch && Sequence == other.Sequence;

    public override bool Equals(object? obj) => obj is Lsn other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(Epoch, Sequence);

    public override string ToString() => $"{Epoch}:{Sequence}";

    public static Lsn Max(Lsn a, Lsn b) => a.CompareTo(b) >= 0 ? a : b;

    public static bool operator ==(Lsn left, Lsn right) => left.Equals(right);

    public static bool operator !=(Lsn left, Lsn right) => !left.Equals(right);

    public static bool operator <(Lsn left, Lsn right) => left.CompareTo(right) < 0;

    public static bool operator >(Lsn left, Lsn right) => left.CompareTo(right) > 0;

    public static bool operator <=(Lsn left, Lsn right) => left.CompareTo(right) <= 0;

    public static bool operator >=(Lsn left, Lsn right) => left.CompareTo(right) >= 0;
}
