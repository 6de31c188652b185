using System.Globalization;

namespace Converge.Client.Drill;

/// <summary>What <c>converge drill</c> was asked for. <see cref="Check"/> names the first bad value, or returns null.</summary>
public sealed record DrillOptions(
    TimeSpan Duration,
    int Seed,
    int Compute = 2,
    int Storage = 3,
    string? DataDirectory = null,
    string? JsonPath = null)
{
    public const long VolumeSizeBytes = 256L << 20;
    public static readonly TimeSpan MaxDuration = TimeSpan.FromHours(24);

    /// <summary>Blocks the writers cycle through: small enough that blocks are overwritten many times in a short run.</summary>
    public long WorkingSetBlocks { get; init; } = 16_384;

    public int Writers { get; init; } = 4;

    public int Readers { get; init; } = 2;

    /// <summary>Mean time between fault injections (each tick draws from half to one and a half times it).</summary>
    public TimeSpan MeanFaultInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Faults per kind the run must reach: once <see cref="Duration"/> has passed, faults go on until every count is met
    /// or <see cref="Overtime"/> more has passed (a slow machine restarts silos slowly, which bounds the kill rate).
    /// </summary>
    public IReadOnlyDictionary<string, int> RequiredFaults { get; init; } = new Dictionary<string, int>();

    public TimeSpan Overtime { get; init; } = TimeSpan.Zero;

    /// <summary>
    /// Runs every silo in a network namespace of its own and injects network partitions among the faults (needs root);
    /// false runs every silo on 127.0.0.1 with kills and pauses only.
    /// </summary>
    public bool Partitions { get; init; } = true;

    public string? Check()
    {
        if (Duration <= TimeSpan.Zero || Duration > MaxDuration)
        {
            return $"--duration must be between 1 s and {MaxDuration.TotalHours:0} h";
        }

        if (MeanFaultInterval < TimeSpan.FromSeconds(1) || MeanFaultInterval > TimeSpan.FromSeconds(60))
        {
            return "--fault-interval must be between 1 s and 60 s";
        }

        if (Compute < 2)
        {
            return "--compute must be at least 2: a killed holder's volume moves to another compute silo";
        }

        if (Storage < 3)
        {
            return "--storage must be at least 3: a storage silo is killed while two stay alive";
        }

        if (Compute > 9 || Storage > 9)
        {
            return "--compute and --storage are at most 9 each on one machine";
        }

        if (Partitions && (!OperatingSystem.IsLinux() || Environment.UserName != "root"))
        {
            return "partitions need root (a network namespace per silo); run as root or pass --no-partitions";
        }

        if (WorkingSetBlocks <= 0 || WorkingSetBlocks * BlockStamp.BlockBytes > VolumeSizeBytes || Writers <= 0 || Readers < 0)
        {
            return "the working set must fit the volume and there must be at least one writer";
        }

        return null;
    }

    /// <summary>Parses durations like 90s, 3m, 1h or 1h30m (a bare number is seconds); null when malformed.</summary>
    public static TimeSpan? ParseDuration(string text)
    {
        var total = TimeSpan.Zero;
        var number = 0L;
        var digits = 0;
        foreach (var c in text.Trim().ToLowerInvariant())
        {
            if (c is >= '0' and <= '9')
            {
                if (++digits > 9)
                {
                    return null;
                }

                number = (number * 10) + (c - '0');
                continue;
            }

            if (digits == 0)
            {
                return null;
            }

            total += c switch
            {
                'h' => TimeSpan.FromHours(number),
                'm' => TimeSpan.FromMinutes(number),
                's' => TimeSpan.FromSeconds(number),
                _ => TimeSpan.MinValue,
            };
            if (total < TimeSpan.Zero)
            {
                return null;
            }

            (number, digits) = (0, 0);
        }

        return digits > 0 ? total + TimeSpan.FromSeconds(number) : total == TimeSpan.Zero ? null : total;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"duration {Duration.TotalSeconds:0} s, seed {Seed}, {Compute} compute + {Storage} storage silos, {Writers} writers, {Readers} readers{(Partitions ? ", a network namespace per silo" : "")}");
}
