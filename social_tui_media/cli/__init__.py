"""The command-line interfaces: argument parsing and presentation over the jobs."""
