"""Evaluation: how well the engine ranks causes, measured the same way in the benchmarks and in
the product's accuracy ledger.

- :mod:`.ledger`: where each confirmed cause was ranked (AC@k over the knowledge base);
- :mod:`.topk`: AS@k, mean rank, AIS@k on labelled cases (inner-service labels);
- :mod:`.cv`: folds (leave one group out, repeated stratified k-fold) and the choice of constants
  on training folds only;
- :mod:`.calibration`: Platt fitting of the confidence, Brier score, reliability table;
- :mod:`.reference`: the reference methods (trace spectrum, metric robust z, log templates, random);
- :mod:`.nezha`: the Nezha data set's labels (service and inner-service) and each case's window;
- :mod:`.logparsing`: grouping accuracy of the log templates on Loghub-layout data;
- :mod:`.smd`: metric detection and HitRate on SMD-layout data (SMD, ASD);
- :mod:`.prior`: the confirmed-cause prior measured online, with the history's leak guard.
"""
from .ledger import AccuracyLedger, accuracy

__all__ = ["AccuracyLedger", "accuracy"]
