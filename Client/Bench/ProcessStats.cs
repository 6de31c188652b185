using System.Globalization;
using System.Runtime.InteropServices;

namespace Converge.Client.Bench;

/// <summary>CPU time and peak resident memory of a process, read from <c>/proc</c>.</summary>
public static partial class ProcessStats
{
    private const int ScClockTicks = 2;

    private static readonly long TicksPerSecond = Math.Max(1, SystemConfiguration(ScClockTicks));

    /// <summary>User plus system CPU seconds used so far, or null when the process is gone.</summary>
    public static double? CpuSeconds(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }

        // The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed:
        // state is field 3, utime field 14, stime field 15.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var utime = long.Parse(fields[14 - 3], CultureInfo.InvariantCulture);
        var stime = long.Parse(fields[15 - 3], CultureInfo.InvariantCulture);
        return (utime + stime) / (double)TicksPerSecond;
    }

    /// <summary>Peak resident set size (VmHWM) in bytes, or null when the process is gone.</summary>
    public static long? PeakRssBytes(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    var kib = line["VmHWM:".Length..].Trim().Split(' ')[0];
                    return long.Parse(kib, CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (IOException)
        {
            return null;
        }

        return null;
    }

    /// <summary>Total memory of the machine in bytes (MemTotal).</summary>
    public static long MachineMemoryBytes()
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                return long.Parse(line["MemTotal:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long SystemConfiguration(int name);
}

/// <summary>CPU seconds of a set of processes at one moment; the difference of two samples is the work in between.</summary>
public sealed record CpuSample(IReadOnlyDictionary<string, double> SecondsByProcess)
{
    public static CpuSample Take(IReadOnlyDictionary<string, int> pids)
    {
        var seconds = new Dictionary<string, double>();
        foreach (var (name, pid) in pids)
        {
            seconds[name] = ProcessStats.CpuSeconds(pid) ?? throw new BenchException($"{name} (pid {pid}) is no longer running");
        }

        return new CpuSample(seconds);
    }

    public double SecondsSince(CpuSample earlier)
    {
        var total = 0.0;
        foreach (var (name, seconds) in SecondsByProcess)
        {
            total += seconds - earlier.SecondsByProcess.GetValueOrDefault(name);
        }

        return total;
    }
}

/// <summary>The benchmark could not be carried out; the message is for the operator.</summary>
public sealed class BenchException(string message) : Exception(message);
