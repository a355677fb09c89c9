"""The rule language (SPEC section 5): rules files, tier conditions and classification. Never uses eval."""

from segmenter.rules.expression import (
    ConditionError,
    compile_condition,
    format_number,
    normalise,
    parse_condition,
)
from segmenter.rules.loader import (
    DEFAULT_SOURCE,
    default_rules,
    default_rules_text,
    load_rules,
    parse_rules,
    rules_version,
)
from segmenter.rules.model import (
    DAY_FEATURES,
    FEATURES,
    MONEY_FEATURES,
    OPERATORS,
    Comparison,
    Dimension,
    RulesError,
    RuleSet,
    Tier,
)

__all__ = [
    "DAY_FEATURES",
    "DEFAULT_SOURCE",
    "FEATURES",
    "MONEY_FEATURES",
    "OPERATORS",
    "Comparison",
    "ConditionError",
    "Dimension",
    "RuleSet",
    "RulesError",
    "Tier",
    "compile_condition",
    "default_rules",
    "default_rules_text",
    "format_number",
    "load_rules",
    "normalise",
    "parse_condition",
    "parse_rules",
    "rules_version",
]
