using System.Diagnostics;
using Converge.Client;
using Converge.Client.Local;
using Xunit.Abstractions;

namespace Converge.Tests.Infrastructure;

/// <summary>
/// A real cluster of silo processes started through the same <see cref="LocalCluster"/> code path as
/// <c>./converge up</c>, in a temporary directory and on ports shifted away from a developer's own cluster.
/// Disposing stops every process it started (by pid) and deletes the directory.
/// </summary>
public sealed class TestCluster : IAsyncDisposable
{
    private static int _nextOffset = Environment.ProcessId % 40;

    private TestCluster(LocalCluster cluster, string directory)
    {
        Local = cluster;
        Directory = directory;
    }

    public LocalCluster Local { get; }

    public string Directory { get; }

    public ClusterLayout Layout => Local.Layout!;

    /// <summary>
    /// Starts a cluster; <paramref name="namespaces"/> puts every silo in a network namespace of its own (partitions),
    /// <paramref name="siloArguments"/> are added to every silo's command line.
    /// </summary>
    public static async Task<TestCluster> StartAsync(
        ITestOutputHelper? output, int compute = 1, int storage = 2, bool postgres = false, bool namespaces = false, IReadOnlyList<string>? siloArguments = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "converge-test-" + Guid.NewGuid().ToString("N")[..8]);
        // Each cluster gets its own port block, away from the default cluster's ports and from other test runs.
        var offset = FreePortOffset(compute, storage);
        var writer = new OutputWriter(output);
        var local = new LocalCluster(RepositoryRoot, directory, writer) { ExtraSiloArguments = siloArguments ?? [] };
        var cluster = new TestCluster(local, directory);
        try
        {
            await local.UpAsync(new UpOptions(compute, storage, postgres, offset, Namespaces: namespaces), CancellationToken.None);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }

        return cluster;
    }

    private static int FreePortOffset(int compute, int storage)
    {
        for (var attempt = 0; attempt < 40; attempt++)
        {
            var offset = 2000 + (Interlocked.Increment(ref _nextOffset) % 40 * 300);
            if (ClusterLayout.PortsAreFree(offset, compute, storage))
            {
                return offset;
            }
        }

        throw new InvalidOperationException("no free block of loopback ports for a test cluster");
    }

    public static string RepositoryRoot { get; } = SiloBinaries.FindRepositoryRoot();

    public Task<ConvergeClient> ConnectAsync() => Local.ConnectAsync(TimeSpan.FromSeconds(30), CancellationToken.None);

    /// <summary>
    /// A client that uses only the named nodes' gateways: for tests that kill other nodes, whose gateways would otherwise
    /// hold a request sent through them just before the kill until its response timeout.
    /// </summary>
    public Task<ConvergeClient> ConnectThroughAsync(params string[] nodes) =>
        ConvergeClient.ConnectAsync(Layout.Gateways(n => nodes.Contains(n.Name)), Layout.ClusterId, TimeSpan.FromSeconds(30), CancellationToken.None);

    /// <summary>Set (to anything) to keep every test cluster's directory, with its silo logs, after the test.</summary>
    public const string KeepVariable = "CONVERGE_KEEP_TEST_CLUSTERS";

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Local.Layout is not null)
            {
                await Local.DownAsync();
            }
        }
        finally
        {
            foreach (var node in Local.Layout?.Nodes ?? [])
            {
                if (SiloProcess.IsRunning(node.Pid, node.Name))
                {
                    SiloProcess.Kill(node.Pid);
                }
            }

            if (Local.Layout is { UsesNamespaces: true } layout)
            {
                NetworkNamespaces.Remove(layout);
            }

            try
            {
                if (Environment.GetEnvironmentVariable(KeepVariable) is not { Length: > 0 })
                {
                    System.IO.Directory.Delete(Directory, recursive: true);
                }
            }
            catch (IOException)
            {
                // A file still held by a dying process: the temp directory is cleaned by the OS eventually.
            }
        }
    }

    /// <summary>
    /// Calls <paramref name="call"/> until it gets through, for a call made right after a silo was killed: until
    /// membership declares the silo dead (a few seconds), a grain whose directory entry or activation lived there
    /// answers "silo unavailable", a rejected message or a timeout, for any client. Other failures, and these past
    /// <paramref name="patience"/>, are thrown.
    /// </summary>
    public static async Task<T> PastALostSiloAsync<T>(Func<Task<T>> call, TimeSpan patience)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await call();
            }
            catch (Exception e) when (e is Orleans.Runtime.SiloUnavailableException or Orleans.Runtime.OrleansMessageRejectionException or TimeoutException
                && clock.Elapsed < patience)
            {
                await Task.Delay(250);
            }
        }
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails with <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds:0} s waiting for {what}");
            }

            await Task.Delay(100);
        }
    }

    private sealed class OutputWriter(ITestOutputHelper? output) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            try
            {
                output?.WriteLine(value ?? "");
            }
            catch (InvalidOperationException)
            {
                // The test has finished; progress lines after that have nowhere to go.
            }
        }
    }
}
