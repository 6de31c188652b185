using System.Diagnostics;
using Converge.Client.Local;

namespace Converge.Benchmarks;

/// <summary>What a recorded benchmark section says about where it ran: the commit and the machine's load.</summary>
internal static class BenchmarkEnvironment
{
    /// <summary>Prints a benchmark's markdown section and, when asked, appends it to BENCHMARKS.md.</summary>
    public static async Task PublishAsync(string repositoryRoot, string name, string section, bool record)
    {
        Console.WriteLine(section);
        if (record)
        {
            await File.AppendAllTextAsync(Path.Combine(repositoryRoot, "BENCHMARKS.md"), "\n" + section);
            Console.Error.WriteLine($"{name}: appended to BENCHMARKS.md");
        }
    }

    /// <summary>Stops the benchmark's private cluster and removes its directory.</summary>
    public static async Task TearDownAsync(LocalCluster cluster, string directory)
    {
        await cluster.DownAsync();
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // A file still held by a dying process: the temp directory is left behind.
        }
    }

    public static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    public static string GitHead()
    {
        try
        {
            using var git = Process.Start(new ProcessStartInfo("git", "rev-parse --short HEAD") { RedirectStandardOutput = true, UseShellExecute = false });
            var text = git!.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            return text;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }
}
