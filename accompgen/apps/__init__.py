"""The applications on top of everything else: the `accompgen` command line, demo, benchmarks, recipe."""
