using System.Security.Cryptography;
using Converge.Tests.Nbd;
using Xunit;

namespace Converge.Tests.NbdCluster;

/// <summary>
/// Real NBD clients (nbdinfo, qemu-img, nbdcopy, qemu-io, fio) against a compute silo's NBD port: every byte goes
/// through the volume controller grain and is committed on two storage silos before the write is answered.
/// </summary>
[Collection(NbdClusterCollection.Name)]
public sealed class NbdClusterToolTests(NbdClusterFixture fixture) : IDisposable
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(2);
    private readonly string _directory = Directory.CreateTempSubdirectory("nbd-cluster-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Nbdinfo_ShowsVolumeSizeAndBlockSizes_AndListShowsEveryVolume()
    {
        var volume = await fixture.CreateVolumeAsync("info");
        await fixture.CreateVolumeAsync("info-second", 2 * NbdClusterFixture.SmallVolumeBytes);
        var output = await ToolRunner.RunOkAsync("nbdinfo", [fixture.Uri(1, volume)], ToolTimeout);
        Assert.Contains($"export-size: {NbdClusterFixture.SmallVolumeBytes}", output, StringComparison.Ordinal);
        Assert.Contains("block_size_minimum: 1", output, StringComparison.Ordinal);
        Assert.Contains($"block_size_preferred: {NbdClusterFixture.VolumeBlockBytes}", output, StringComparison.Ordinal);
        Assert.Contains("block_size_maximum: 33554432", output, StringComparison.Ordinal);
        Assert.Contains("can_multi_conn: true", output, StringComparison.Ordinal);

        // Listing describes every volume (NBD_OPT_INFO) without attaching it, so no epoch moves.
        var epoch = await fixture.EpochAsync(volume);
        var list = await ToolRunner.RunOkAsync("nbdinfo", ["--list", $"nbd://127.0.0.1:{fixture.NbdPort(1)}"], ToolTimeout);
        Assert.Equal(epoch, await fixture.EpochAsync(volume));
        Assert.Equal(0UL, await fixture.EpochAsync("info-second"));
        Assert.Contains("export=\"info\"", list, StringComparison.Ordinal);
        Assert.Contains("export=\"info-second\"", list, StringComparison.Ordinal);
        Assert.Contains($"export-size: {2 * NbdClusterFixture.SmallVolumeBytes}", list, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QemuImgConvert_Of256MiBRandomImage_CompareFindsIdentical_AndNbdcopyRoundTripKeepsSha256()
    {
        var volume = await fixture.CreateVolumeAsync("image", NbdClusterFixture.ImageVolumeBytes);
        var source = Path.Combine(_directory, "source.img");
        var back = Path.Combine(_directory, "back.img");
        WriteRandomFile(source, (int)NbdClusterFixture.ImageVolumeBytes);

        await ToolRunner.RunOkAsync("qemu-img", ["convert", "-n", "-f", "raw", "-O", "raw", source, fixture.Uri(1, volume)], ToolTimeout);
        var compared = await ToolRunner.RunOkAsync("qemu-img", ["compare", "-f", "raw", "-F", "raw", source, fixture.Uri(1, volume)], ToolTimeout);
        Assert.Contains("Images are identical", compared, StringComparison.Ordinal);

        // nbdcopy writes a fresh volume through several connections at once, then reads it back.
        var copy = await fixture.CreateVolumeAsync("image-copy", NbdClusterFixture.ImageVolumeBytes);
        await ToolRunner.RunOkAsync("nbdcopy", [source, fixture.Uri(1, copy)], ToolTimeout);
        await ToolRunner.RunOkAsync("nbdcopy", [fixture.Uri(1, copy), back], ToolTimeout);
        if (Sha256(source) != Sha256(back))
        {
            // Tell a wrong read from wrong stored data: read the volume again through the other compute node (a new
            // attachment there starts with an empty cache, so every block comes from the log mirrors or the extents).
            var again = Path.Combine(_directory, "again.img");
            await ToolRunner.RunOkAsync("nbdcopy", [fixture.Uri(2, copy), again], ToolTimeout);
            Assert.Fail($"first read-back: {DescribeDifference(source, back)}; read again through compute-2: {DescribeDifference(source, again)}");
        }
    }

    [Fact]
    public async Task QemuIo_UnalignedPatternWrites_ReadBack_AndZeroesAndDiscardsReadAsZeros()
    {
        var volume = await fixture.CreateVolumeAsync("qemu-io");
        string[] commands =
        [
            "write -P 0xab 1000 5000",
            "write -P 0xcd 70001 333",
            "write -P 0x5a 1048000 2097000",
            "read -P 0xab 1000 5000",
            "read -P 0xcd 70001 333",
            "read -P 0x5a 1048000 2097000",
            "read -P 0 0 1000",
            "read -P 0 70334 1000",
            "write -z 2000 1000",
            "read -P 0 2000 1000",
            "read -P 0xab 1000 1000",
            "read -P 0xab 3000 3000",
            "discard 0 16384",
            "read -P 0 0 16384",
            "read -P 0xcd 70001 333",
            "write -z 1049000 1048576",
            "read -P 0x5a 1048000 1000",
            "read -P 0 1049000 1048576",
            "read -P 0x5a 2097576 1047424",
        ];
        var output = await RunQemuIoAsync(fixture.Uri(1, volume), commands);
        Assert.DoesNotContain("fail", output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("error", output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("read 16384/16384 bytes", output, StringComparison.Ordinal);
        Assert.Contains("read 2097000/2097000 bytes", output, StringComparison.Ordinal);

        // A new connection (a new attach) sees the same bytes, so they came from the mirrors' log, not a connection's state.
        var again = await RunQemuIoAsync(fixture.Uri(1, volume), ["read -P 0 0 16384", "read -P 0xcd 70001 333", "read -P 0 1049000 1048576"]);
        Assert.DoesNotContain("fail", again, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task BlockStatus_ReportsHolesOnlyWhereNothingIsStored_AndSparseCopiesKeepEveryByte()
    {
        const long MiB = 1024 * 1024;
        var volume = await fixture.CreateVolumeAsync("sparse");
        var uri = fixture.Uri(1, volume);
        var written = await RunQemuIoAsync(uri, ["write -P 0xab 0 1M", "write -P 0xcd 10M 4k", "write -z 20M 1M"]);
        Assert.DoesNotContain("fail", written, StringComparison.OrdinalIgnoreCase);

        // Data is data whether it is still in the log or destaged already (a close seals the segment); the zeroed range
        // may be either until its destage proves it zero; what was never written is a hole.
        var map = await MapAsync(uri);
        Assert.True(AllData(map, 0, MiB), Describe(map));
        Assert.True(AllData(map, 10 * MiB, 4096), Describe(map));
        Assert.True(AllHole(map, MiB, 9 * MiB), Describe(map));
        Assert.True(AllHole(map, 32 * MiB, 32 * MiB), Describe(map));

        // A block written a moment ago, on a connection that stays open (its segment is neither sealed nor destaged, and
        // its extent replicas still hold nothing), is data: the dirty map is asked before the replicas.
        // libnbd's Python binding (package python3-libnbd) belongs to the system's Python, whatever python3 is on PATH.
        var fresh = await ToolRunner.RunOkAsync("/usr/bin/python3", ["-c", $$"""
            import nbd
            h = nbd.NBD()
            h.add_meta_context("base:allocation")
            h.connect_uri("{{uri}}")
            h.pwrite(b"\x5e" * 4096, {{44 * MiB}})
            seen = []
            h.block_status(8192, {{44 * MiB}}, lambda context, offset, entries, error: seen.extend(entries))
            print("status", *seen)
            h.shutdown()
            """], ToolTimeout);
        Assert.Contains("status 4096 0 4096 3", fresh, StringComparison.Ordinal);

        // Once destaged (segments seal after 2 s idle), the extents answer: the zeroed range is a hole, data is still data.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!AllHole(map, 20 * MiB, MiB) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(500);
            map = await MapAsync(uri);
            Assert.True(AllData(map, 0, MiB) && AllData(map, 10 * MiB, 4096), Describe(map));
        }

        Assert.True(AllHole(map, 20 * MiB, MiB), $"the zeroed range was still reported as data after 60 s: {Describe(map)}");
        Assert.True(AllHole(map, 10 * MiB + 4096, 10 * MiB - 4096), Describe(map));

        // A write after the destage is data at once, before its own destage.
        var late = await RunQemuIoAsync(uri, ["write -P 0x77 40M 4k"]);
        Assert.DoesNotContain("fail", late, StringComparison.OrdinalIgnoreCase);
        map = await MapAsync(uri);
        Assert.True(AllData(map, 40 * MiB, 4096) && AllHole(map, 40 * MiB + 4096, (4 * MiB) - 4096), Describe(map));

        // Copies that skip holes hold every byte, through this node and through the other one (a move).
        var expected = new byte[NbdClusterFixture.SmallVolumeBytes];
        expected.AsSpan(0, (int)MiB).Fill(0xab);
        expected.AsSpan((int)(10 * MiB), 4096).Fill(0xcd);
        expected.AsSpan((int)(40 * MiB), 4096).Fill(0x77);
        expected.AsSpan((int)(44 * MiB), 4096).Fill(0x5e);
        var expectedPath = Path.Combine(_directory, "expected.img");
        await File.WriteAllBytesAsync(expectedPath, expected);
        var copied = Path.Combine(_directory, "copied.img");
        await ToolRunner.RunOkAsync("nbdcopy", [uri, copied], ToolTimeout);
        Assert.Equal(Sha256(expectedPath), Sha256(copied));
        var converted = Path.Combine(_directory, "converted.img");
        await ToolRunner.RunOkAsync("qemu-img", ["convert", "-f", "raw", "-O", "raw", fixture.Uri(2, volume), converted], ToolTimeout);
        Assert.Equal(Sha256(expectedPath), Sha256(converted));
        map = await MapAsync(fixture.Uri(2, volume));
        Assert.True(AllData(map, 0, MiB) && AllData(map, 40 * MiB, 4096) && AllHole(map, 20 * MiB, MiB) && AllHole(map, 48 * MiB, 16 * MiB), Describe(map));
    }

    /// <summary><c>nbdinfo --map</c>: (offset, length, state) for base:allocation, state 3 being hole and zero.</summary>
    private static async Task<List<(long Offset, long Length, int State)>> MapAsync(string uri)
    {
        var output = await ToolRunner.RunOkAsync("nbdinfo", ["--map", uri], ToolTimeout);
        var map = new List<(long, long, int)>();
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            map.Add((long.Parse(fields[0]), long.Parse(fields[1]), int.Parse(fields[2])));
        }

        Assert.Equal(NbdClusterFixture.SmallVolumeBytes, map.Sum(e => e.Item2));
        return map;
    }

    private static bool AllData(List<(long Offset, long Length, int State)> map, long offset, long length) =>
        Covering(map, offset, length).All(e => e.State == 0);

    private static bool AllHole(List<(long Offset, long Length, int State)> map, long offset, long length) =>
        Covering(map, offset, length).All(e => e.State == 3);

    private static IEnumerable<(long Offset, long Length, int State)> Covering(List<(long Offset, long Length, int State)> map, long offset, long length) =>
        map.Where(e => e.Offset < offset + length && e.Offset + e.Length > offset);

    private static string Describe(List<(long Offset, long Length, int State)> map) =>
        string.Join("; ", map.Select(e => $"{e.Offset}+{e.Length}:{e.State}"));

    [Fact]
    public async Task Fio_RandomWritesAtDepth32_VerifyWithCrc32c()
    {
        var volume = await fixture.CreateVolumeAsync("fio-solo");
        var output = await ToolRunner.RunOkAsync("fio", FioArguments(fixture.Uri(1, volume), "solo", offsetBytes: 0, sizeBytes: 16 << 20), ToolTimeout);
        AssertFioVerified(output);
    }

    [Fact]
    public async Task TwoFioJobsOnTwoConnectionsToOneVolume_BothVerify()
    {
        var volume = await fixture.CreateVolumeAsync("fio-pair");
        var first = ToolRunner.RunOkAsync("fio", FioArguments(fixture.Uri(1, volume), "first", offsetBytes: 0, sizeBytes: 16 << 20), ToolTimeout);
        var second = ToolRunner.RunOkAsync("fio", FioArguments(fixture.Uri(1, volume), "second", offsetBytes: 32 << 20, sizeBytes: 16 << 20), ToolTimeout);
        var outputs = await Task.WhenAll(first, second);
        AssertFioVerified(outputs[0]);
        AssertFioVerified(outputs[1]);
    }

    [Fact]
    public async Task ReadPastTheEnd_GetsEinval_WritePastTheEnd_GetsEnospc_AndTheLastBlockStillWorks()
    {
        var volume = await fixture.CreateVolumeAsync("edges");
        var size = NbdClusterFixture.SmallVolumeBytes;
        // qemu-io checks ranges against the size it was told, so the raw client sends the requests the server must refuse.
        await using var client = await RawNbdClient.ConnectAsync(fixture.NbdPort(1));
        Assert.Equal(size, await client.GoAsync(volume, structured: false));
        await client.SendRequestAsync(0, 0, 1, (ulong)size - 512, 1024);
        Assert.Equal(22u, (await client.ReadSimpleReplyAsync(1)).Error);
        await client.SendRequestAsync(1, 0, 2, (ulong)size - 512, 1024, new byte[1024]);
        Assert.Equal(28u, (await client.ReadSimpleReplyAsync(2)).Error);
        await client.SendRequestAsync(1, 0, 3, (ulong)size - 512, 512, Enumerable.Repeat((byte)7, 512).ToArray());
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(3)).Error);
        await client.SendRequestAsync(0, 0, 4, (ulong)size - 1024, 1024);
        var tail = await client.ReadSimpleReplyAsync(4, 1024);
        Assert.Equal(0u, tail.Error);
        Assert.Equal(new byte[512], tail.Data[..512]);
        Assert.All(tail.Data[512..], b => Assert.Equal(7, b));
    }

    private static async Task<string> RunQemuIoAsync(string uri, IEnumerable<string> commands)
    {
        var arguments = new List<string> { "-f", "raw" };
        foreach (var command in commands)
        {
            arguments.Add("-c");
            arguments.Add(command);
        }

        arguments.Add(uri);
        return await ToolRunner.RunOkAsync("qemu-io", arguments, ToolTimeout);
    }

    private static string[] FioArguments(string uri, string name, long offsetBytes, long sizeBytes) =>
    [
        $"--name={name}", "--ioengine=nbd", $"--uri={uri}", "--rw=randwrite", "--bs=4k", "--iodepth=32",
        $"--offset={offsetBytes}", $"--size={sizeBytes}", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
        "--randrepeat=0", "--output-format=normal",
    ];

    private static void AssertFioVerified(string output)
    {
        Assert.DoesNotContain("verify: bad", output, StringComparison.Ordinal);
        Assert.Contains("err= 0", output, StringComparison.Ordinal);
        Assert.Contains("WRITE:", output, StringComparison.Ordinal);
        Assert.Contains("READ:", output, StringComparison.Ordinal); // the verify pass read everything back
    }

    private static void WriteRandomFile(string path, int sizeBytes)
    {
        using var file = File.Create(path);
        var chunk = new byte[1 << 20];
        for (var written = 0; written < sizeBytes; written += chunk.Length)
        {
            Random.Shared.NextBytes(chunk);
            file.Write(chunk, 0, Math.Min(chunk.Length, sizeBytes - written));
        }
    }

    /// <summary>
    /// Which 4 KiB blocks of <paramref name="copy"/> differ from <paramref name="original"/>, and what they hold instead
    /// (zeros, another block of the original, or unknown bytes), so a failure says where to look.
    /// </summary>
    private static string DescribeDifference(string original, string copy)
    {
        const int block = 4096;
        var a = File.ReadAllBytes(original);
        var b = File.ReadAllBytes(copy);
        var byContent = new Dictionary<string, long>();
        for (var i = 0; i + block <= a.Length; i += block)
        {
            byContent.TryAdd(Convert.ToHexString(SHA256.HashData(a.AsSpan(i, block))), i / block);
        }

        var differing = new List<string>();
        var count = 0;
        for (var i = 0; i < Math.Min(a.Length, b.Length); i += block)
        {
            var length = Math.Min(block, Math.Min(a.Length, b.Length) - i);
            if (a.AsSpan(i, length).SequenceEqual(b.AsSpan(i, length)))
            {
                continue;
            }

            count++;
            if (differing.Count < 12)
            {
                var got = b.AsSpan(i, length);
                var what = !got.ContainsAnyExcept((byte)0) ? "zeros"
                    : length == block && byContent.TryGetValue(Convert.ToHexString(SHA256.HashData(got)), out var other) ? $"block {other}"
                    : "other bytes";
                differing.Add($"{i / block}: {what}");
            }
        }

        if (count == 0 && a.Length == b.Length)
        {
            return "identical";
        }

        return $"copy of {b.Length} bytes (original {a.Length}) differs in {count} blocks of 4 KiB; first: {string.Join(", ", differing)}";
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }
}
