// Cluster tests start real silo processes; running them side by side on a 2-core machine only makes them slow and flaky.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
