"""Evaluation: how well the engine ranks causes, measured the same way in the benchmarks and in
the product's accuracy ledger (where each confirmed cause was ranked)."""
