using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Converge.Client.Local;

/// <summary>Starts, signals and inspects silo processes of a local cluster.</summary>
public static partial class SiloProcess
{
    private const int SigKill = 9;
    private const int SigTerm = 15;
    private const int SigCont = 18;
    private const int SigStop = 19;

    /// <summary>
    /// Starts a silo detached from the caller's session (so Ctrl-C on the CLI leaves it running), with its output
    /// appended to <paramref name="logPath"/>. Returns its process id.
    /// </summary>
    public static int Start(string siloDll, IReadOnlyList<string> arguments, string logPath, IReadOnlyList<string>? wrapper = null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
        var pidPath = logPath + ".pid";
        File.Delete(pidPath);
        var start = new ProcessStartInfo("setsid") { UseShellExecute = false };
        // setsid -f always forks, so the silo's pid is not the one Process.Start sees: the shell writes its own
        // pid, then execs dotnet in place, so that pid is the silo's.
        start.ArgumentList.Add("-f");
        start.ArgumentList.Add("sh");
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("echo $$ >\"$CONVERGE_PIDFILE.tmp\" && mv \"$CONVERGE_PIDFILE.tmp\" \"$CONVERGE_PIDFILE\" && exec \"$@\" </dev/null >>\"$CONVERGE_LOG\" 2>&1");
        start.ArgumentList.Add("converge-silo");
        foreach (var part in wrapper ?? [])
        {
            start.ArgumentList.Add(part);
        }

        start.ArgumentList.Add("dotnet");
        start.ArgumentList.Add(siloDll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["CONVERGE_LOG"] = logPath;
        start.Environment["CONVERGE_PIDFILE"] = pidPath;
        using (var launcher = Process.Start(start) ?? throw new InvalidOperationException($"could not start {siloDll}"))
        {
            launcher.WaitForExit(5000);
        }

        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (File.Exists(pidPath) && int.TryParse(File.ReadAllText(pidPath).Trim(), System.Globalization.CultureInfo.InvariantCulture, out var pid))
            {
                return pid;
            }

            Thread.Sleep(20);
        }

        throw new InvalidOperationException($"the silo launched with {siloDll} did not report its pid in {pidPath} within 10 s");
    }

    /// <summary>True when <paramref name="pid"/> is a running silo for <paramref name="node"/> (guards against pid reuse).</summary>
    public static bool IsRunning(int pid, string node)
    {
        if (pid <= 0)
        {
            return false;
        }

        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..][0];
            if (state == 'Z')
            {
                return false;
            }

            // The launcher's shell execs dotnet in place: for a moment during the exec the command line reads empty.
            // That is the silo starting, not gone (kernel threads, also empty, have no executable).
            return cmdline.Length == 0
                ? new FileInfo($"/proc/{pid}/exe").LinkTarget is not null
                : cmdline.Contains("\0--node\0" + node + "\0", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// SIGKILL, then waits (bounded, 10 s) until the process is gone, so a restart right after never meets the dying
    /// process still holding its ports and files.
    /// </summary>
    public static void Kill(int pid)
    {
        // A silo started under a wrapper is the wrapper's child: it goes first, or it would outlive a killed tracer.
        foreach (var child in Children(pid))
        {
            Kill(child);
        }

        if (SendSignal(pid, SigKill) != 0)
        {
            return;
        }

        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(10) && ProcessExists(pid))
        {
            Thread.Sleep(20);
        }
    }

    /// <summary>The direct children of <paramref name="pid"/> (none once it is gone).</summary>
    private static List<int> Children(int pid)
    {
        var children = new List<int>();
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                var text = File.ReadAllText(Path.Combine(task, "children"));
                foreach (var part in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (int.TryParse(part, System.Globalization.CultureInfo.InvariantCulture, out var child))
                    {
                        children.Add(child);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Gone meanwhile: no children left to kill.
        }

        return children;
    }

    /// <summary>True while the process has not exited (a zombie has: it holds no ports or files any more).</summary>
    private static bool ProcessExists(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static void Terminate(int pid) => _ = SendSignal(pid, SigTerm);

    /// <summary>SIGSTOP: the process keeps its sockets and memory but runs nothing until <see cref="Continue"/>.</summary>
    public static void Stop(int pid) => _ = SendSignal(pid, SigStop);

    public static void Continue(int pid) => _ = SendSignal(pid, SigCont);

    /// <summary>Waits until the process is gone; false if it still runs at the deadline.</summary>
    public static async Task<bool> WaitForExitAsync(int pid, string node, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (IsRunning(pid, node))
        {
            if (deadline.Elapsed > timeout)
            {
                return false;
            }

            await Task.Delay(100);
        }

        return true;
    }

    public static string Tail(string path, int lines)
    {
        if (!File.Exists(path))
        {
            return $"(no log at {path})";
        }

        var all = File.ReadAllLines(path);
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
