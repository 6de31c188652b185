namespace Converge.DataPath;

/// <summary>
/// The data path could not be set up (too few storage nodes, a segment neither mirror can fence or list). Serializable
/// and declared with the contracts, so a client that sees it escape a grain call can read its message.
/// </summary>
[GenerateSerializer, Alias("Converge.DataPathException")]
public sealed class DataPathException : Exception
{
    public DataPathException(string message)
        : base(message)
    {
    }
}
