using Converge.Hosting;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace Converge.Tests.Cache;

public sealed class CacheSettingsTests
{
    private static SiloSettings Parse(params (string Key, string Value)[] options)
    {
        var values = new Dictionary<string, string?> { ["node"] = "compute-1" };
        foreach (var (key, value) in options)
        {
            values[key] = value;
        }

        return SiloSettings.Parse(new ConfigurationBuilder().AddInMemoryCollection(values).Build(), "compute");
    }

    [Fact]
    public void CacheSizes_DefaultTo256MiBOfRamAnd1GiBOfFlash()
    {
        var settings = Parse();
        Assert.Equal(256, settings.CacheRamMb);
        Assert.Equal(1024, settings.CacheFlashMb);
    }

    [Fact]
    public void CacheSizes_AreTakenFromOptions_AndFlashMayBeOff()
    {
        var settings = Parse(("cache-ram-mb", "64"), ("cache-flash-mb", "0"));
        Assert.Equal(64, settings.CacheRamMb);
        Assert.Equal(0, settings.CacheFlashMb);
    }

    [Theory]
    [InlineData("cache-ram-mb", "0")]
    [InlineData("cache-ram-mb", "-5")]
    [InlineData("cache-ram-mb", "1.5")]
    [InlineData("cache-flash-mb", "lots")]
    [InlineData("cache-flash-mb", "99999999")]
    public void BadCacheSizes_AreRejected_NamingTheOption(string key, string value)
    {
        var error = Assert.Throws<SettingsException>(() => Parse((key, value)));
        Assert.Contains("--" + key, error.Message, StringComparison.Ordinal);
        Assert.Contains(value, error.Message, StringComparison.Ordinal);
    }
}
