"""Evaluation: accuracy, Monte-Carlo over chips and drift times, time parsing, statistics."""
from tsb_aihw.evaluation.accuracy import evaluate_accuracy
from tsb_aihw.evaluation.drift import evaluate_drift
from tsb_aihw.evaluation.monte_carlo import MonteCarloResult, monte_carlo
from tsb_aihw.evaluation.stats import Summary, summarize
from tsb_aihw.evaluation.times import format_time, parse_time, parse_times

__all__ = [
    "MonteCarloResult",
    "Summary",
    "evaluate_accuracy",
    "evaluate_drift",
    "format_time",
    "monte_carlo",
    "parse_time",
    "parse_times",
    "summarize",
]
