"""The explorer's memory options, shared by `explore` and `verify-fix`:
--memory (a byte budget beside the state budget) and --hash-compact
(store.py)."""

from __future__ import annotations

import argparse
import re

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'512M' -> bytes (K, M, G, T are powers of 1024; B optional)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*",
                     text.upper())
    if m is None:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a size such as 512M, 4G or 1000000")
    size = int(float(m.group(1)) * UNITS[m.group(2)])
    if size < 1 << 20:
        raise argparse.ArgumentTypeError(f"{text!r}: expected at least 1M")
    return size


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memory", type=parse_size, default=0, metavar="SIZE",
        help="stop, as when the state budget runs out, once the search has"
        " grown this process's memory by SIZE (512M, 4G; default: no"
        " bound)")
    parser.add_argument(
        "--hash-compact", action="store_true",
        help="keep a 64-bit hash per state instead of the state (far less"
        " memory); a state can then be missed, and the verdict says with"
        " what probability")
