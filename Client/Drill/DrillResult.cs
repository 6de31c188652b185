using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Converge.Client.Drill;

/// <summary>Write-resume times of one fault kind, in milliseconds.</summary>
public sealed record RecoveryStats(string Kind, int Injected, int Recovered, int Unrecovered, double P50Ms, double P99Ms, double MaxMs);

/// <summary>The outcome of one drill run, as printed and saved with <c>--json</c>.</summary>
public sealed record DrillResult(
    int Seed,
    string Options,
    double ElapsedSeconds,
    long WritesAcknowledged,
    long WritesFailed,
    long ReadsOk,
    long ReadsFailed,
    long BlocksVerified,
    long AcknowledgedWritesLost,
    long WrongReads,
    long UnverifiedBlocks,
    IReadOnlyDictionary<string, int> FaultsByKind,
    IReadOnlyList<RecoveryStats> Recovery,
    int UnplannedRestarts,
    long VolumeMoves,
    double LongestWriteStallMs,
    IReadOnlyList<string> Problems,
    IReadOnlyList<string> Errors,
    IReadOnlyDictionary<string, int> IoExceptions)
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>True when nothing acknowledged was lost, nothing wrong was read, every written block was checked and the cluster recovered from every fault.</summary>
    public bool Passed => AcknowledgedWritesLost == 0 && WrongReads == 0 && UnverifiedBlocks == 0 && Errors.Count == 0;

    public int TotalFaults => FaultsByKind.Values.Sum();

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public string ToText()
    {
        var text = new StringBuilder();
        void Line(FormattableString line) => text.AppendLine(line.ToString(CultureInfo.InvariantCulture));
        Line($"drill: {(Passed ? "PASSED" : "FAILED")} seed {Seed} ({Options}), {ElapsedSeconds:0} s");
        Line($"  operations: {WritesAcknowledged} writes acknowledged, {WritesFailed} writes failed or cut off, {ReadsOk} reads checked, {ReadsFailed} reads failed");
        Line($"  faults: {TotalFaults} ({string.Join(", ", FaultsByKind.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}"))}); {UnplannedRestarts} silos restarted after stopping themselves; volume moved {VolumeMoves} times");
        Line($"  verification: {BlocksVerified} blocks read back at the end; acknowledged writes lost {AcknowledgedWritesLost}; wrong reads {WrongReads}; unverified blocks {UnverifiedBlocks}");
        Line($"  write-resume time after a fault (first acknowledged write issued after it), longest write stall {LongestWriteStallMs / 1000:0.0} s:");
        foreach (var r in Recovery)
        {
            Line($"    {r.Kind,-13} n={r.Recovered,-5} p50 {r.P50Ms,8:0} ms  p99 {r.P99Ms,8:0} ms  max {r.MaxMs,8:0} ms{(r.Unrecovered > 0 ? $"  ({r.Unrecovered} not yet recovered at the end)" : "")}");
        }

        if (IoExceptions.Count > 0)
        {
            Line($"  I/O calls failed with: {string.Join(", ", IoExceptions.OrderByDescending(p => p.Value).Select(p => $"{p.Key} x{p.Value}"))}");
        }

        foreach (var problem in Problems)
        {
            Line($"  problem: {problem}");
        }

        foreach (var error in Errors)
        {
            Line($"  error: {error}");
        }

        return text.ToString();
    }
}
