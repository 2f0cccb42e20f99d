"""The op grammar as the scenario loader sees it: text -> (kind, a, b).

Each op's grammar is part of its one definition in fuzzinit/model/ops_*.py
(see fuzzinit/model/op.py); this module re-exports the parser and names
how traces and reports spell an op.
"""

from fuzzinit.model.grammar import OpSyntaxError
from fuzzinit.model.ops_msr import FRED_ENTRY, FRED_STKLVLS_LINUX
from fuzzinit.model.vocabulary import OP_HELP, OP_NAMES, parse_op

__all__ = ["FRED_ENTRY", "FRED_STKLVLS_LINUX", "OP_HELP", "OP_NAMES",
           "OpSyntaxError", "canonical", "parse_op"]


def canonical(text: str) -> str:
    """Whitespace-normalised op text: how traces and reports name an op."""
    return " ".join(text.split())
