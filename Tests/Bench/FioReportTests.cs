using Converge.Client.Bench;
using Converge.DataPath;
using Xunit;

namespace Converge.Tests.Bench;

/// <summary>fio's JSON reports (captured from fio 3.33) are read exactly, and ratios and targets follow from them.</summary>
public sealed class FioReportTests
{
    private static string Fixture(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Bench", "Fixtures", name));

    [Fact]
    public void Parse_NbdReportWithBannerLine_ReadsIopsBandwidthAndClatPercentiles()
    {
        var text = Fixture("fio-nbd-randwrite-qd32.json");
        Assert.StartsWith("fio: connected to NBD server", text, StringComparison.Ordinal);

        var m = FioMeasurement.Parse(text, write: true);

        Assert.Equal(10313.121272, m.Iops, 6);
        Assert.Equal(42242544, m.BandwidthBytesPerSecond);
        Assert.Equal(84992000, m.IoBytes);
        Assert.Equal(2.012, m.RuntimeSeconds, 6);
        Assert.Equal(1105.920, m.ClatP50Us, 6);
        Assert.Equal(20054.016, m.ClatP99Us, 6);
        Assert.Equal(72876.032, m.ClatP999Us, 6);
        Assert.Null(m.SyncP50Us);
    }

    [Fact]
    public void Parse_DiskWriteWithFdatasync_ReadsTheSyncMedian()
    {
        var m = FioMeasurement.Parse(Fixture("fio-disk-randwrite-qd1-fdatasync.json"), write: true);

        Assert.Equal(214.785215, m.Iops, 6);
        Assert.Equal(257.024, m.ClatP50Us, 6);
        Assert.Equal(3129.344, m.SyncP50Us!.Value, 6);
    }

    [Fact]
    public void Parse_ReadDirectionOfAWriteJob_IsRefused()
    {
        var e = Assert.Throws<FormatException>(() => FioMeasurement.Parse(Fixture("fio-nbd-randwrite-qd32.json"), write: false));
        Assert.Contains("moved no data in the read direction", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fio: connection refused")]
    [InlineData("")]
    public void Parse_OutputWithoutJson_IsRefused(string text) =>
        Assert.Throws<FormatException>(() => FioMeasurement.Parse(text, write: true));

    [Fact]
    public void Parse_FailedJob_IsRefused()
    {
        var text = Fixture("fio-nbd-randwrite-qd32.json").Replace("\"error\" : 0", "\"error\" : 5", StringComparison.Ordinal);
        var e = Assert.Throws<FormatException>(() => FioMeasurement.Parse(text, write: true));
        Assert.Contains("failed with error 5", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Targets_AreRatiosOfConvergeToEachBaseline()
    {
        var run = Run(
            System(BenchSystems.Converge,
                (FioJob.RandWriteQd1, Measure(iops: 1000, p50Us: 400)),
                (FioJob.RandWriteQd32, Measure(iops: 30000, p50Us: 1000)),
                (FioJob.RandReadQd1, Measure(iops: 5000, p50Us: 90)),
                (FioJob.RandReadQd32, Measure(iops: 40000, p50Us: 800)),
                (FioJob.SeqWrite, Measure(iops: 100, p50Us: 80000, bandwidth: 100e6))),
            System(BenchSystems.NbdkitMemory,
                (FioJob.RandWriteQd1, Measure(iops: 20000, p50Us: 50)),
                (FioJob.RandReadQd1, Measure(iops: 20000, p50Us: 50)),
                (FioJob.RandReadQd32, Measure(iops: 80000, p50Us: 400))),
            System(BenchSystems.QemuNbdCacheNone, (FioJob.RandReadQd32, Measure(iops: 40000, p50Us: 800))),
            System(BenchSystems.QemuNbdDirectSync, (FioJob.RandWriteQd32, Measure(iops: 10000, p50Us: 3000))),
            System(BenchSystems.Disk,
                (FioJob.RandWriteQd1, Measure(iops: 2000, p50Us: 100, syncP50Us: 130)),
                (FioJob.SeqWrite, Measure(iops: 500, p50Us: 2000, bandwidth: 500e6))));

        var targets = run.Targets;

        Assert.Equal(3.0, BenchTargets.IopsRatio(run, FioJob.RandWriteQd32.Name, BenchSystems.QemuNbdDirectSync)!.Value, 9);
        Assert.Equal(1.8, BenchTargets.P50Ratio(run, FioJob.RandReadQd1.Name, BenchSystems.NbdkitMemory)!.Value, 9);
        Assert.Equal(200.0, BenchTargets.WriteLatencyFloorUs(run)!.Value, 9); // 50 nbdkit + 20 RTT + 130 fdatasync
        Assert.Equal(
            [(3.0, "MET"), (2.0, "MISSED"), (1.0, "MET"), (0.5, "MISSED"), (1.8, "MISSED"), (0.2, "MISSED")],
            targets.Select(t => (Math.Round(t.Ratio!.Value, 9), t.Status)).ToArray());
    }

    [Fact]
    public void Targets_WithoutTheirBaseline_AreNotMeasured()
    {
        var run = Run(System(BenchSystems.Converge, (FioJob.RandWriteQd32, Measure(iops: 30000, p50Us: 1000))));

        Assert.All(run.Targets, t => Assert.Equal("NOT MEASURED", t.Status));
        Assert.Contains("NOT MEASURED", BenchReport.Markdown(run), StringComparison.Ordinal);
    }

    [Fact]
    public void QuickPlan_RunsOnBaselinesOnlyTheJobsTargetsNeed()
    {
        var quick = BenchPlan.For(new BenchOptions(Quick: true));
        var full = BenchPlan.For(new BenchOptions());

        Assert.Equal(5, quick.JobsFor(BenchSystems.Converge).Count);
        Assert.Equal([FioJob.RandReadQd32], quick.JobsFor(BenchSystems.QemuNbdCacheNone));
        Assert.Equal(6, full.JobsFor(BenchSystems.QemuNbdCacheNone).Count);
        Assert.Equal(10, full.RuntimeSeconds);
        Assert.Equal(7, BenchPlan.For(new BenchOptions(Quick: true, RuntimeSeconds: 7)).RuntimeSeconds);
    }

    [Fact]
    public void ReadTierJobs_SayWhichTiersAnswered_InTheReport()
    {
        var before = Stats(ram: 10, peer: 0, log: 5, extents: 0);
        var served = BenchRunner.ServedFrom(before, Stats(ram: 10, peer: 750, log: 255, extents: 0), "compute-2");
        Assert.Equal("served by compute-2: peer cache 75.0%, log 25.0%", served);
        Assert.Equal("served by compute-1: no block reads counted", BenchRunner.ServedFrom(before, before, "compute-1"));

        var run = Run(new SystemResult(BenchSystems.Converge, "c", [new JobResult(FioJob.RandReadQd32Peer.Name, Measure(iops: 5000, p50Us: 900), 1.0, served)]));
        Assert.Contains($"{FioJob.RandReadQd32Peer.Name}: {served}.", BenchReport.Markdown(run), StringComparison.Ordinal);
    }

    [Fact]
    public void GroupArguments_RunOneFioJobPerExport_ReportedTogether()
    {
        var arguments = FioRunner.GroupArguments(FioJob.RandWriteQd32, 10809, ["a", "b"], 64L << 20, 10, "/tmp/out.json");

        Assert.Equal(["--name=randwrite-4k-qd32-a", "--name=randwrite-4k-qd32-b"], arguments.Where(a => a.StartsWith("--name=", StringComparison.Ordinal)));
        Assert.Equal(["--uri=nbd://127.0.0.1:10809/a", "--uri=nbd://127.0.0.1:10809/b"], arguments.Where(a => a.StartsWith("--uri=", StringComparison.Ordinal)));
        Assert.Contains("--group_reporting", arguments);
        Assert.Contains("--iodepth=32", arguments);
        // Global options come before the first job: fio applies them to every job.
        Assert.True(arguments.ToList().IndexOf("--time_based") < arguments.ToList().IndexOf("--name=randwrite-4k-qd32-a"));
    }

    [Fact]
    public void ScalingReport_ComparesEachShapeWithTheFirst()
    {
        var run = new ScalingRun(DateTimeOffset.UnixEpoch, "abc1234", "./converge bench --scaling", 2, "test cpu", "fsync", 40, 10, 4,
        [
            new ScalingPoint(1, 2, "randwrite-4k-qd32", 1000, 4.1, 900, 5000, 3.0, 300),
            new ScalingPoint(1, 4, "randwrite-4k-qd32", 1800, 7.4, 800, 4000, 5.0, 280),
        ], 200, "0 0 0", "0 0 0");

        var markdown = BenchReport.Markdown(run);

        Assert.Contains("| 1 | 4 | randwrite-4k-qd32 | 1800 | 7.4 | 800 | 4000 | 280 | 1.80x |", markdown, StringComparison.Ordinal);
        Assert.Contains("log capped at 40 MB/s per storage silo", markdown, StringComparison.Ordinal);
    }

    [Fact]
    public void RepeatedJobs_ReportTheRunWithTheMedianIops_AndEveryRun()
    {
        var runs = new[] { 5200.0, 3100.0, 4700.0 }
            .Select((iops, i) => new JobResult(FioJob.RandWriteQd32.Name, Measure(iops, 1000 + i), CpuSecondsPerGiB: i)).ToArray();
        var median = JobResult.MedianOf(runs);
        Assert.Equal(4700, median.Fio.Iops);
        Assert.Equal(1002, median.Fio.ClatP50Us); // the latencies and CPU of that same run, not medians taken apart
        Assert.Equal(2, median.CpuSecondsPerGiB);
        Assert.Equal([5200.0, 3100.0, 4700.0], median.RunIops);
        Assert.Equal(3100, JobResult.MedianOf(runs[..2]).Fio.Iops); // an even count takes the lower middle
        Assert.Same(runs[0], JobResult.MedianOf(runs[..1]));
        Assert.Throws<ArgumentException>(() => JobResult.MedianOf([]));

        var run = Run(new SystemResult(BenchSystems.Converge, "c", [median])) with { RunsPerJob = 3 };
        var markdown = BenchReport.Markdown(run);
        Assert.Contains("each run 3 times", markdown, StringComparison.Ordinal);
        Assert.Contains("converge randwrite-4k-qd32 4700 (5200, 3100, 4700)", markdown, StringComparison.Ordinal);
    }

    private static CacheNodeStats Stats(long ram, long peer, long log, long extents) =>
        new("n", ram, ram * 4096, 0, 0, peer, peer * 4096, log, log * 4096, extents, extents * 4096, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            default!, default!, default!, default!, default!);

    private static FioMeasurement Measure(double iops, double p50Us, double? bandwidth = null, double? syncP50Us = null) =>
        new(iops, bandwidth ?? iops * 4096, IoBytes: 1L << 30, RuntimeSeconds: 10, p50Us, p50Us * 2, p50Us * 3, syncP50Us);

    private static SystemResult System(string name, params (FioJob Job, FioMeasurement M)[] jobs) =>
        new(name, name, jobs.Select(j => new JobResult(j.Job.Name, j.M, 1.0)).ToArray());

    private static BenchRun Run(params SystemResult[] systems) => new(
        DateTimeOffset.UnixEpoch, "abc1234", "./converge bench", 2, 1L << 34, "test cpu", 1, 2, "fsync", 0, 10, 1, 128L << 20,
        LoopbackRttUs: 20, systems, new Dictionary<string, long> { ["compute-1"] = 1 << 28 }, 60, "0.00 0.00 0.00", "0.00 0.00 0.00");
}
