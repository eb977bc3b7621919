"""Canary and shadow analysis: metric providers and the anytime-valid judges.

analyzer.Analyzer (stateful windows over cumulative counters) -> judge.evaluate (pure)
-> canary / shadow -> error_label (count test: SPRT + Beta mixture), srm, guards, latency.
"""
