// Placeholder entry point so the skeleton builds; the command-line client replaces it.
return 0;
