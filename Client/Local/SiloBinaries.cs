namespace Converge.Client.Local;

/// <summary>Finds the built silo assemblies in the source tree (Release first, then Debug).</summary>
public static class SiloBinaries
{
    public static string Find(string repositoryRoot, string role)
    {
        var configurations = Environment.GetEnvironmentVariable("CONVERGE_CONFIGURATION") is { Length: > 0 } c
            ? new[] { c }
            : ["Release", "Debug"];
        foreach (var configuration in configurations)
        {
            var path = Path.Combine(repositoryRoot, $"Silo.{role}", "bin", configuration, "net10.0", $"Silo.{role}.dll");
            if (File.Exists(path))
            {
                return path;
            }
        }

        throw new ClusterCommandException($"Silo.{role} is not built under {repositoryRoot}; run ./converge (which builds) or dotnet build -c Release");
    }

    /// <summary>The repository root: CONVERGE_HOME, else the nearest parent of the working or base directory holding Cluster.sln.</summary>
    public static string FindRepositoryRoot()
    {
        if (Environment.GetEnvironmentVariable("CONVERGE_HOME") is { Length: > 0 } home)
        {
            return home;
        }

        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Cluster.sln")))
                {
                    return dir.FullName;
                }
            }
        }

        throw new ClusterCommandException("cannot find the Converge source tree (Cluster.sln); set CONVERGE_HOME");
    }
}
