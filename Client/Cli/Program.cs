using System.CommandLine;
using Converge.Client.Cli;

return await ConvergeCli.RunAsync(args, Console.Out, Console.Error);
