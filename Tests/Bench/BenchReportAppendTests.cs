using Converge.Client.Bench;
using Xunit;

namespace Converge.Tests.Bench;

/// <summary>A bench section appended to BENCHMARKS.md starts after a blank line, whatever the file ended with.</summary>
public sealed class BenchReportAppendTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"converge-bench-append-{Guid.NewGuid():N}.md");

    [Theory]
    [InlineData("notes by hand, no newline", "notes by hand, no newline\n\n## run\n")]
    [InlineData("notes by hand\n", "notes by hand\n\n## run\n")]
    [InlineData("notes by hand\n\n", "notes by hand\n\n## run\n")]
    [InlineData("", "## run\n")]
    public void AppendSection_LeavesOneBlankLineBeforeTheSection(string existing, string expected)
    {
        File.WriteAllText(_path, existing);

        BenchReport.AppendSection(_path, "## run\n");

        Assert.Equal(expected, File.ReadAllText(_path));
    }

    [Fact]
    public void AppendSection_CreatesAMissingFile()
    {
        BenchReport.AppendSection(_path, "## run\n");

        Assert.Equal("## run\n", File.ReadAllText(_path));
    }

    public void Dispose() => File.Delete(_path);
}
