"""Side-by-side benchmarks: each kernel against a peer implementation, timed in the same run."""
