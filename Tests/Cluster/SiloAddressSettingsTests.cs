using System.Net;
using Converge.Hosting;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace Converge.Tests.Cluster;

/// <summary>The address a silo listens on and the primary's: loopback unless told, IPv4 only, a bad one refused by name.</summary>
public sealed class SiloAddressSettingsTests
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
}
