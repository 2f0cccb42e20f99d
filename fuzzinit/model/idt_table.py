"""An IDT written out gate by gate (`lidt gates ...`), packed into one int.

The named IDTs (`lidt full`, `lidt early`, ...) are the tables Linux builds;
an explicit table says which vectors have a gate, which of those are marked
not present, which use an IST stack, the IDTR limit and what the gates'
handlers do. It is packed into the value F_IDT holds, so the state stays one
int per field and a table costs nothing when no scenario uses one:

    bits 0-2    handler: STUB, or the IDT_* kind whose Linux handlers run
    bit  3      TABLE_MARK: every packed table is >= 8, above the IDT_* kinds
    bits 4-19   IDTR limit
    bits 20+v   vector v has a 64-bit interrupt gate (else the 16 bytes are 0)
    bits 276+v  that gate's P flag is 0
    bits 532+3v that gate's IST index (0-7)
"""

from typing import Final

from .grammar import OpSyntaxError, number
from .machine import IDT_BRINGUP, IDT_EARLY, IDT_FULL, IDT_NAMES

TABLE_MARK: Final = 1 << 3
STUB: Final = 0            # the gate's handler reports its vector and returns
HANDLER_KINDS: Final[dict[str, int]] = {
    "stub": STUB, "full": IDT_FULL, "early": IDT_EARLY,
    "bringup": IDT_BRINGUP}
_LIMIT: Final = 4
_GATE: Final = 20
_NOT_PRESENT: Final = 276
_IST: Final = 532

SYNTAX: Final = ("lidt gates V,V..|none [np V,V..] [ist V:N,..] [limit N]"
                 " [handler stub|full|early|bringup]")


def is_table(idt: int) -> bool:
    return idt >= TABLE_MARK


# rule: idt-tables
def handler(idt: int) -> int:
    return idt & 7


def limit(idt: int) -> int:
    return (idt >> _LIMIT) & 0xFFFF


def has_gate(idt: int, vector: int) -> bool:
    return (idt >> (_GATE + vector)) & 1 == 1


def not_present(idt: int, vector: int) -> bool:
    return (idt >> (_NOT_PRESENT + vector)) & 1 == 1


def ist(idt: int, vector: int) -> int:
    return (idt >> (_IST + 3 * vector)) & 7


def pack(gates: list[int], np: list[int], ists: dict[int, int], lim: int,
         kind: int) -> int:
    value = TABLE_MARK | kind | (lim << _LIMIT)
    for v in gates:
        value |= 1 << (_GATE + v)
    for v in np:
        value |= 1 << (_NOT_PRESENT + v)
    for v, n in ists.items():
        value |= n << (_IST + 3 * v)
    return value


def _vectors(text: str) -> list[int]:
    if text.lower() == "none":
        return []
    return [number(w, "vector", 255) for w in text.split(",") if w] or \
        [number(text, "vector", 255)]


def parse(args: list[str]) -> int:
    """`gates LIST [np LIST] [ist V:N,..] [limit N] [handler KIND]` (the
    words after `lidt`) as a packed table."""
    if len(args) < 2 or args[0].lower() != "gates" or len(args) % 2:
        raise OpSyntaxError("lidt gates needs a vector list and key-value"
                            " pairs", SYNTAX,
                            "e.g. 'lidt gates 3,8,13 ist 8:1 limit 0xfff'")
    gates = _vectors(args[1])
    np: list[int] = []
    ists: dict[int, int] = {}
    lim = 0xFFF   # 256 gates of 16 bytes (LX idt.c IDT_TABLE_SIZE)
    kind = STUB
    seen: set[str] = set()
    for key, value in zip(args[2::2], args[3::2], strict=True):
        key = key.lower()
        if key in seen or key not in ("np", "ist", "limit", "handler"):
            raise OpSyntaxError(f"lidt gates: {key!r} "
                                + ("given twice" if key in seen else
                                   "is not a key"), SYNTAX,
                                "keys are np, ist, limit and handler, once"
                                " each")
        seen.add(key)
        if key == "np":
            np = _vectors(value)
        elif key == "limit":
            lim = number(value, "IDT limit", 0xFFFF)
        elif key == "handler":
            if value.lower() not in HANDLER_KINDS:
                raise OpSyntaxError(f"unknown gate handler {value!r}",
                                    "stub, full, early or bringup",
                                    "stub reports the vector and returns")
            kind = HANDLER_KINDS[value.lower()]
        else:
            for pair in value.split(","):
                vec, sep, n = pair.partition(":")
                if not sep:
                    raise OpSyntaxError(f"ist entry {pair!r} has no ':'",
                                        "VECTOR:IST, e.g. 8:1",
                                        "write the vector, a colon and the"
                                        " IST index 1-7")
                ists[number(vec, "vector", 255)] = number(n, "IST index", 7)
    for v in (*np, *ists):
        if v not in gates:
            raise OpSyntaxError(f"vector {v} has no gate in the list",
                                "np and ist name vectors of `gates`",
                                f"add {v} to the gates")
    return pack(gates, np, ists, lim, kind)


def describe(idt: int) -> str:
    """The table as `lidt gates` wrote it, for chains and reports."""
    gates = [v for v in range(256) if has_gate(idt, v)]
    text = "gates " + (",".join(map(str, gates)) if gates else "none")
    np = [v for v in gates if not_present(idt, v)]
    if np:
        text += " np " + ",".join(map(str, np))
    ists = [f"{v}:{ist(idt, v)}" for v in gates if ist(idt, v)]
    if ists:
        text += " ist " + ",".join(ists)
    return text + f" limit {limit(idt):#x}"


def idt_name(idt: int) -> str:
    """F_IDT as reports show it: a named table or the explicit one."""
    return describe(idt) if is_table(idt) else IDT_NAMES[idt]
