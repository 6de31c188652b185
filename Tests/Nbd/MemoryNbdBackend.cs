using System.Collections.Concurrent;
using Converge.Nbd;

namespace Converge.Tests.Nbd;

/// <summary>An in-memory backend for tests: named sparse volumes, policy refusals, and open/dispose counts.</summary>
public sealed class MemoryNbdBackend : INbdBackend
{
    private readonly ConcurrentDictionary<string, MemoryVolume> _volumes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _refusals = new(StringComparer.Ordinal);

    public MemoryVolume AddVolume(string name, long sizeBytes, string description = "")
    {
        var volume = new MemoryVolume(name, sizeBytes, description);
        if (!_volumes.TryAdd(name, volume))
        {
            throw new InvalidOperationException($"volume {name} exists");
        }

        return volume;
    }

    public MemoryVolume Volume(string name) => _volumes[name];

    public int AllocatedBlocksOf(string name) => _volumes[name].AllocatedBlocks;

    /// <summary>Makes opens of <paramref name="name"/> fail with a policy refusal carrying <paramref name="message"/>.</summary>
    public void Refuse(string name, string message) => _refusals[name] = message;

    public ValueTask<IReadOnlyList<NbdExportInfo>> ListExportsAsync(CancellationToken cancellationToken)
    {
        var list = new List<NbdExportInfo>();
        foreach (var volume in _volumes.Values)
        {
            list.Add(new NbdExportInfo(volume.Name, volume.Description));
        }

        list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return ValueTask.FromResult<IReadOnlyList<NbdExportInfo>>(list);
    }

    public ValueTask<NbdOpenResult> OpenAsync(string exportName, CancellationToken cancellationToken)
    {
        if (_refusals.TryGetValue(exportName, out var message))
        {
            return ValueTask.FromResult(NbdOpenResult.Refused(NbdOpenStatus.PolicyRefused, message));
        }

        if (!_volumes.TryGetValue(exportName, out var volume))
        {
            return ValueTask.FromResult(NbdOpenResult.Refused(NbdOpenStatus.UnknownExport, $"no volume named '{exportName}'"));
        }

        return ValueTask.FromResult(NbdOpenResult.Opened(volume.Open()));
    }
}
