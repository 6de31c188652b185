using System.Net;
using Converge.Hosting;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace Converge.Tests.Cluster;

/// <summary>
/// Silo options: the address a silo listens on and the primary's (loopback unless told, IPv4 only) and the automatic
/// removal delay of a dead storage node; a bad value is refused naming the option.
/// </summary>
public sealed class SiloSettingsTests
{
    private static SiloSettings Parse(params (string Key, string Value)[] options)
    {
        var values = new Dictionary<string, string?> { ["node"] = "storage-2" };
        foreach (var (key, value) in options)
        {
            values[key] = value;
        }

        return SiloSettings.Parse(new ConfigurationBuilder().AddInMemoryCollection(values).Build(), "storage");
    }

    [Fact]
    public void Addresses_DefaultToLoopback()
    {
        var settings = Parse();
        Assert.Equal(IPAddress.Loopback, settings.Address);
        Assert.Equal(IPAddress.Loopback, settings.PrimaryAddress);
    }

    [Fact]
    public void ThePrimaryAddress_DefaultsToTheSilosOwn()
    {
        var settings = Parse(("address", "10.231.9.12"));
        Assert.Equal(IPAddress.Parse("10.231.9.12"), settings.Address);
        Assert.Equal(IPAddress.Parse("10.231.9.12"), settings.PrimaryAddress);
        Assert.Equal(IPAddress.Parse("10.231.9.11"), Parse(("address", "10.231.9.12"), ("primary-address", "10.231.9.11")).PrimaryAddress);
    }

    [Theory]
    [InlineData("address", "localhost")]
    [InlineData("address", "::1")]
    [InlineData("address", "10.1")]
    [InlineData("address", "300.1.1.1")]
    [InlineData("primary-address", "")]
    public void BadAddresses_AreRejected_NamingTheOption(string key, string value)
    {
        var error = Assert.Throws<SettingsException>(() => Parse((key, value)));
        Assert.Contains("--" + key, error.Message, StringComparison.Ordinal);
        Assert.Contains("IPv4", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AutoRemoval_DefaultsToFifteenMinutes_AndZeroTurnsItOff()
    {
        Assert.Equal(TimeSpan.FromMinutes(15), Parse().AutoRemoveAfter);
        Assert.Equal(TimeSpan.Zero, Parse(("auto-remove-after", "0")).AutoRemoveAfter);
        Assert.Equal(TimeSpan.FromSeconds(10), Parse(("auto-remove-after", "10")).AutoRemoveAfter);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("10m")]
    [InlineData("99999999")]
    public void BadAutoRemovalDelays_AreRejected_NamingTheOption(string value)
    {
        var error = Assert.Throws<SettingsException>(() => Parse(("auto-remove-after", value)));
        Assert.Contains("--auto-remove-after", error.Message, StringComparison.Ordinal);
        Assert.Contains(value, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LogBandwidth_IsUncappedByDefault_AndTakesWholeMegabytesPerSecond()
    {
        Assert.Equal(0, Parse().LogBandwidthMb);
        Assert.Equal(40, Parse(("log-bandwidth-mb", "40")).LogBandwidthMb);
        foreach (var bad in new[] { "-1", "40M", "100001" })
        {
            var error = Assert.Throws<SettingsException>(() => Parse(("log-bandwidth-mb", bad)));
            Assert.Contains("--log-bandwidth-mb", error.Message, StringComparison.Ordinal);
        }
    }
}
