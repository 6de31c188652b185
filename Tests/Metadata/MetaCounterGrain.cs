using Converge.Hosting.Metadata;

namespace Converge.Tests.Metadata;

public interface IMetaCounterGrain : IGrainWithStringKey
{
    Task<int> Increment();

    Task<int> Read();
}

[GenerateSerializer]
[Alias("Converge.Tests.Metadata.MetaCounterState")]
public sealed class MetaCounterState
{
    [Id(0)]
    public int Value { get; set; }
}

/// <summary>A grain whose state lives in the metadata database, as control-plane grains' does.</summary>
public sealed class MetaCounterGrain(
    [PersistentState("x", MetadataHosting.StorageName)] IPersistentState<MetaCounterState> state) : Grain, IMetaCounterGrain
{
    public async Task<int> Increment()
    {
        state.State.Value++;
        await state.WriteStateAsync();
        return state.State.Value;
    }

    public Task<int> Read() => Task.FromResult(state.State.Value);
}
