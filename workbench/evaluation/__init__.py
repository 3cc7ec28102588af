"""Evaluation: how well the engine ranks causes, measured the same way in the benchmarks and in
the product's accuracy ledger (:mod:`.ledger`: where each confirmed cause was ranked)."""
from .ledger import AccuracyLedger, accuracy

__all__ = ["AccuracyLedger", "accuracy"]
