"""Old name of the decide stage, kept so code written against it still imports.

New code imports `watcher.rules` (Rule, Decision, PLAN_RULES) and `watcher.decide`.
"""

from watcher.decide import EpochRecord, decide, decide_all, verdict
from watcher.rules import PLAN_RULES, Decision, Rule, check_rules, metric_value

__all__ = ["PLAN_RULES", "Decision", "EpochRecord", "Rule", "check_rules", "decide",
           "decide_all", "metric_value", "verdict"]
