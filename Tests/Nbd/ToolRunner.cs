using System.Diagnostics;
using System.Text;
using Xunit;

namespace Converge.Tests.Nbd;

/// <summary>Runs a real NBD client tool with a timeout; a missing tool fails the test, it never skips it.</summary>
public static class ToolRunner
{
    public static string RequireTool(string name)
    {
        foreach (var directory in new[] { "/usr/bin", "/usr/local/bin", "/bin" })
        {
            var path = Path.Combine(directory, name);
            if (File.Exists(path))
            {
                return path;
            }
        }

        Assert.Fail($"required tool '{name}' is not installed (Debian packages: fio, qemu-utils, libnbd-bin, nbdkit)");
        return "";
    }

    public sealed record Result(int ExitCode, string Output);

    /// <summary>Starts the tool; the returned task completes with its exit code and merged output, or kills it by PID at the timeout.</summary>
    public static async Task<Result> RunAsync(string tool, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(RequireTool(tool))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (output) { output.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (output) { output.AppendLine(e.Data); } } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            lock (output)
            {
                Assert.Fail($"{tool} {string.Join(' ', start.ArgumentList)} did not finish within {timeout}; output:\n{output}");
            }
        }

        process.WaitForExit(); // drains the redirected streams
        lock (output)
        {
            return new Result(process.ExitCode, output.ToString());
        }
    }

    public static async Task<string> RunOkAsync(string tool, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var result = await RunAsync(tool, arguments, timeout);
        Assert.True(result.ExitCode == 0, $"{tool} {string.Join(' ', arguments)} exited {result.ExitCode}:\n{result.Output}");
        return result.Output;
    }
}
