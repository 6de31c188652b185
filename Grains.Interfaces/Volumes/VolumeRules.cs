using System.Text.RegularExpressions;

namespace Converge.Volumes;

/// <summary>What makes a volume name, size and block size valid. Checked by the CLI, the client and the grains alike.</summary>
public static partial class VolumeRules
{
    public const long MinSizeBytes = 1L << 20;
    public const long MaxSizeBytes = 64L << 40;
    public const int DefaultBlockSizeBytes = 4096;
    public const int MinBlockSizeBytes = 512;
    public const int MaxBlockSizeBytes = 64 * 1024;

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}$", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();

    public static string? CheckName(string? name) =>
        name is not null && NamePattern().IsMatch(name)
            ? null
            : $"invalid volume name '{name}': use 1-64 characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit";

    public static string? CheckBlockSize(int blockSizeBytes) =>
        blockSizeBytes is >= MinBlockSizeBytes and <= MaxBlockSizeBytes && (blockSizeBytes & (blockSizeBytes - 1)) == 0
            ? null
            : $"invalid block size {blockSizeBytes}: must be a power of two from {MinBlockSizeBytes} to {MaxBlockSizeBytes}";

    public static string? CheckSize(long sizeBytes, int blockSizeBytes)
    {
        if (sizeBytes < MinSizeBytes)
        {
            return $"invalid size {sizeBytes} bytes: a volume must be at least 1 MiB";
        }

        if (sizeBytes > MaxSizeBytes)
        {
            return $"invalid size {sizeBytes} bytes: a volume may be at most 64 TiB";
        }

        return sizeBytes % blockSizeBytes == 0
            ? null
            : $"invalid size {sizeBytes} bytes: must be a multiple of the block size ({blockSizeBytes} bytes)";
    }

    /// <summary>Parses sizes such as <c>10G</c>, <c>512M</c>, <c>1T</c>, <c>4096</c> (binary units). Null when malformed.</summary>
    public static long? ParseSize(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        text = text.Trim();
        var shift = char.ToUpperInvariant(text[^1]) switch
        {
            'K' => 10,
            'M' => 20,
            'G' => 30,
            'T' => 40,
            _ => 0,
        };
        var digits = shift == 0 ? text : text[..^1];
        if (digits.EndsWith("i", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        if (!long.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value))
        {
            return null;
        }

        if (value > (long.MaxValue >> shift))
        {
            return null;
        }

        return value << shift;
    }
}
