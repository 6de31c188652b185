using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Converge.Client.Bench;

/// <summary>
/// A tool process the benchmark started (fio, nbdkit, qemu-nbd). Disposing kills it, with its children, by pid if it
/// still runs, so every exit path (failure, Ctrl-C) leaves nothing behind. Keeps the last few KiB of its output for
/// error messages.
/// </summary>
/// <remarks>
/// Started from a thread of its own that lives until the process is disposed. A parent-death signal
/// (<c>PR_SET_PDEATHSIG</c>, which nbdkit 1.32 sets even without <c>--exit-with-parent</c>) is sent when the
/// <em>thread</em> that forked the process ends, not the parent process; started from a pool thread, nbdkit got SIGTERM
/// in the middle of a long run when that thread retired (seen with strace: SIGTERM, SI_USER, from the parent's pid,
/// after 8 to 16 fio runs). The signal still comes when the benchmark process itself dies, as intended.
/// </remarks>
public sealed class ChildProcess : IAsyncDisposable
{
    private const int TailChars = 4096;
    private readonly Process _process;
    private readonly ManualResetEventSlim _release;
    private readonly StringBuilder _tail = new();

    private ChildProcess(Process process, ManualResetEventSlim release, string display)
    {
        _process = process;
        _release = release;
        Display = display;
    }

    public int Pid => _process.Id;

    public string Display { get; }

    public bool HasExited => _process.HasExited;

    public string OutputTail
    {
        get
        {
            lock (_tail)
            {
                return _tail.ToString();
            }
        }
    }

    public static ChildProcess Start(string file, IReadOnlyList<string> arguments)
    {
        var start = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var started = new TaskCompletionSource<Process>(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new ManualResetEventSlim();
        var parent = new Thread(() =>
        {
            try
            {
                started.SetResult(Process.Start(start) ?? throw new BenchException($"could not start {file}"));
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                started.SetException(new BenchException($"could not start {file}: {e.Message} (on Debian: apt-get install fio nbdkit qemu-utils)"));
                return;
            }
            catch (Exception e)
            {
                started.SetException(e);
                return;
            }

            release.Wait();
        })
        {
            IsBackground = true,
            Name = "parent of " + Path.GetFileName(file),
        };
        parent.Start();
        Process process;
        try
        {
            process = started.Task.GetAwaiter().GetResult();
        }
        catch
        {
            release.Dispose();
            throw;
        }

        var child = new ChildProcess(process, release, file + " " + string.Join(' ', arguments));
        process.OutputDataReceived += (_, e) => child.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => child.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Waits for exit; on timeout or cancellation the process is killed and the wait throws.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            await _process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Kill();
            throw new BenchException($"{Display} did not finish within {timeout.TotalSeconds:0} s");
        }

        return _process.ExitCode;
    }

    /// <summary>Waits until the process accepts TCP connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public async Task WaitForPortAsync(int port, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (HasExited)
            {
                throw new BenchException($"{Display} exited with code {_process.ExitCode} before serving: {OutputTail}");
            }

            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50, cancellationToken);
            }
        }

        throw new BenchException($"{Display} did not open port {port} within {timeout.TotalSeconds:0} s");
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Exited between the check and the kill.
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            // A process that ignores SIGKILL for 10 s is stuck in the kernel; nothing more can be done from here.
        }

        _process.Dispose();
        _release.Set();
    }

    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_tail)
        {
            _tail.AppendLine(line);
            if (_tail.Length > TailChars)
            {
                _tail.Remove(0, _tail.Length - TailChars);
            }
        }
    }
}
