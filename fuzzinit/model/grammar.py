"""Argument parsing shared by the ops' `parse` methods: numbers, bit lists
and the error every bad op string raises.

Lives in the model package, not beside the scenario loader, because each op's
grammar is part of its one definition (see op.py); nothing here is I/O.
"""


from .arch import CR0_BITS as CR0_BITS


class OpSyntaxError(ValueError):
    """An op string that does not parse: (problem, expected, hint)."""

    def __init__(self, problem: str, expected: str, hint: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.expected = expected
        self.hint = hint


def number(text: str, what: str, top: int) -> int:
    """A number from 0 to `top`: a typo is a load error, never a #GP the
    model would report as a finding."""
    try:
        if not text.isascii():   # int() would take other scripts' digits
            raise ValueError(text)
        value = int(text, 0)
    except ValueError:
        raise OpSyntaxError(f"{text!r} is not a number",
                            "a decimal or 0x-prefixed integer",
                            f"write e.g. 0 or 0x{0x1D4:x}") from None
    if not 0 <= value <= top:
        shown = text if len(text) <= 24 else text[:21] + "..."
        raise OpSyntaxError(f"{what} {shown} is out of range",
                            f"0 to {top:#x}" if top > 9 else f"0 to {top}",
                            "check the number for a typo")
    return value


def suggest(word: str, options: list[str]) -> str:
    import difflib
    close = difflib.get_close_matches(word, options, n=1)
    return f"did you mean {close[0]!r}?" if close else "see the README's tables"


def bits(words: list[str], table: dict[str, int], what: str,
         shift: bool) -> int:
    """A mask from bit names; `shift`: the table holds bit numbers, and a
    bit may also be given by number, `bitN` (0 to 63): any bit of the
    64-bit register, reserved ones included (SDM Vol. 3A 2.5)."""
    mask = 0
    for word in words:
        name = word.lower()
        if shift and name.startswith("bit") and name[3:].isascii() and \
                name[3:].isdigit():
            if int(name[3:]) > 63:
                raise OpSyntaxError(f"{what} {word!r} is out of range",
                                    "bit0 to bit63",
                                    "check the number for a typo")
            mask |= 1 << int(name[3:])
            continue
        if name not in table:
            raise OpSyntaxError(f"unknown {what} bit {word!r}",
                                f"one of {', '.join(sorted(table))}"
                                + (", or bitN" if shift else ""),
                                suggest(name, list(table)))
        mask |= (1 << table[name]) if shift else table[name]
    if not words:
        raise OpSyntaxError(f"no {what} bit given", f"a {what} bit name",
                            f"add a bit, e.g. {next(iter(table))}")
    return mask


def signed_bits(words: list[str], table: dict[str, int], what: str,
                shift: bool) -> tuple[int, int]:
    """(bits to set, bits to clear) from +NAME/-NAME words."""
    sets: list[str] = []
    clears: list[str] = []
    for word in words:
        if word[:1] not in "+-" or len(word) < 2:
            raise OpSyntaxError(f"{word!r} has no + or - sign",
                                f"+BIT or -BIT, e.g. +{next(iter(table))}",
                                "prefix each bit with + (set) or - (clear)")
        (sets if word[0] == "+" else clears).append(word[1:])
    return (bits(sets, table, what, shift) if sets else 0,
            bits(clears, table, what, shift) if clears else 0)
