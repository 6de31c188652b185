using Xunit;

namespace Converge.Tests.WritePath;

/// <summary>The write-path test classes share one cluster; each uses its own volume.</summary>
[CollectionDefinition(Name)]
public sealed class WritePathCollection : ICollectionFixture<WritePathCluster>
{
    public const string Name = "write-path cluster";
}
