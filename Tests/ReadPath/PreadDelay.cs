using System.Diagnostics;
using Converge.Client.Local;

namespace Converge.Tests.ReadPath;

/// <summary>
/// Delays every pread64 of a running silo with strace's syscall injection (no hook in the product): a log read on that
/// node then takes at least <c>delayUs</c> per read call, which opens a wide, known window for races with writes
/// (appends use pwrite and fdatasync, never delayed). Disposing stops strace (SIGTERM, so it detaches cleanly).
/// </summary>
internal sealed class PreadDelay : IDisposable
{
    private readonly Process _strace;

    private PreadDelay(Process strace) => _strace = strace;

    public static async Task<PreadDelay> AttachAsync(int pid, int delayUs, TimeSpan timeout)
    {
        var threads = Directory.GetDirectories($"/proc/{pid}/task").Length;
        var start = new ProcessStartInfo("strace", [
            "-f", "-p", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-e", "trace=pread64",
            "-e", $"inject=pread64:delay_enter={delayUs}", "-o", "/dev/null"])
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var strace = Process.Start(start) ?? throw new InvalidOperationException("strace did not start");
        var delay = new PreadDelay(strace);
        var attached = 0;
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        strace.ErrorDataReceived += (_, e) =>
        {
            // strace reports either "Process N attached with T threads" or one line per thread.
            if (e.Data?.Contains("attached", StringComparison.Ordinal) == true
                && (e.Data.Contains("attached with", StringComparison.Ordinal) || Interlocked.Increment(ref attached) >= threads))
            {
                all.TrySetResult();
            }
        };
        strace.BeginErrorReadLine();
        try
        {
            await all.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            delay.Dispose();
            throw new TimeoutException($"strace attached to {Volatile.Read(ref attached)} of {threads} threads of pid {pid} within {timeout.TotalSeconds:0} s");
        }

        return delay;
    }

    public void Dispose()
    {
        if (!_strace.HasExited)
        {
            SiloProcess.Terminate(_strace.Id);
            if (!_strace.WaitForExit(10_000))
            {
                _strace.Kill();
            }
        }

        _strace.Dispose();
    }
}
