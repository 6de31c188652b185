namespace Converge.Log;

/// <summary>
/// Log sequence number of a volume's write: (attachment epoch, per-volume sequence), assigned once by the write
/// grain and kept across retries. Merges keep the highest; equal means duplicate (DESIGN decision 3).
/// </summary>
[GenerateSerializer, Immutable, Alias("Converge.Lsn")]
public readonly record struct Lsn([property: Id(0)] ulong Epoch, [property: Id(1)] ulong Sequence) : IComparable<Lsn>
{
    public int CompareTo(Lsn other)
    {
        var byEpoch = Epoch.CompareTo(other.Epoch);
        return byEpoch != 0 ? byEpoch : Sequence.CompareTo(other.Sequence);
    }

    public static bool operator <(Lsn left, Lsn right) => left.CompareTo(right) < 0;

    public static bool operator >(Lsn left, Lsn right) => left.CompareTo(right) > 0;

    public static bool operator <=(Lsn left, Lsn right) => left.CompareTo(right) <= 0;

    public static bool operator >=(Lsn left, Lsn right) => left.CompareTo(right) >= 0;

    public override string ToString() => $"{Epoch}:{Sequence}";
}
