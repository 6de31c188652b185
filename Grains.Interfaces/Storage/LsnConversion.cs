namespace Converge.Storage;

/// <summary>
/// The log's LSN (<see cref="Converge.Log.Lsn"/>, 64-bit epoch) and the extent store's (<see cref="Lsn"/>, 32-bit epoch
/// because extent metadata stores 32 bits) meet at destage and at extent reads. Conversions are checked: an epoch that
/// does not fit is a bug or a corrupt record and must never be truncated into an older-looking LSN.
/// </summary>
public static class LsnConversion
{
    public static Lsn ToExtentLsn(this Converge.Log.Lsn lsn)
    {
        if (lsn.Epoch > uint.MaxValue)
        {
            throw new OverflowException($"LSN {lsn} has an epoch above the extent store's 32-bit range");
        }

        return new Lsn((uint)lsn.Epoch, lsn.Sequence);
    }

    public static Converge.Log.Lsn ToLogLsn(this Lsn lsn) => new(lsn.Epoch, lsn.Sequence);
}
