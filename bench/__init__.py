"""`python -m bench.run`: the product's benchmarks against its targets and its peers, in one run."""
