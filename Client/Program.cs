// Placeholder entry point so the solution builds until the command-line client lands.
return 0;
