"""The op vocabulary: every op, indexed by its kind, and the parser that
turns an op string into (kind, a, b).

Each op is defined once, in the ops_* module of its family (see op.py for
what an op holds); this module only lists them.
"""

from typing import Final

from .grammar import OpSyntaxError, suggest
from .op import Op
from .ops_cet import cet_ops
from .ops_cr import cr_ops
from .ops_events import event_ops
from .ops_exceptions import exception_ops
from .ops_idt import idt_ops
from .ops_kernel import kernel_ops
from .ops_lass import lass_ops
from .ops_life import life_ops
from .ops_memory import memory_ops
from .ops_mode import mode_ops
from .ops_msr import msr_ops
from .ops_percpu import percpu_ops
from .ops_platform import platform_ops
from .ops_segments import segment_ops
from .ops_smp import smp_ops
from .ops_user import USER_OPS, user_ops


def _by_kind() -> tuple[Op, ...]:
    ops = cr_ops() + msr_ops() + idt_ops() + platform_ops() + event_ops() \
        + smp_ops() + kernel_ops() + exception_ops() + mode_ops() \
        + segment_ops() + cet_ops() + lass_ops() + memory_ops() \
        + user_ops() + life_ops() + percpu_ops()
    ops.sort(key=lambda op: op.kind)
    for i, op in enumerate(ops):
        if op.kind != i:
            raise AssertionError(f"op kinds are not 0..{len(ops) - 1}:"
                                 f" {op.name} has {op.kind} at {i}")
    return tuple(ops)


OPS: Final[tuple[Op, ...]] = _by_kind()
BY_NAME: Final[dict[str, Op]] = {op.name: op for op in OPS}
# Per kind: may it run while the CPU is in user mode (ops_user.USER_OPS)?
USER_OK: Final[tuple[bool, ...]] = tuple(op.name in USER_OPS for op in OPS)
OP_NAMES: Final[tuple[str, ...]] = tuple(sorted(BY_NAME))
OP_HELP: Final = ", ".join(op.syntax for op in sorted(
    OPS, key=lambda op: (op.syntax == op.name, op.kind)))


def parse_op(text: str, ncpu: int) -> tuple[int, int, int]:
    """Parse one op string; raise OpSyntaxError with a fix hint."""
    words = text.split()
    if not words:
        raise OpSyntaxError("empty op", "an op name", "remove the empty string")
    name = words[0].lower()
    op = BY_NAME.get(name)
    if op is None:
        raise OpSyntaxError(f"unknown op {words[0]!r}", OP_HELP,
                            suggest(name, list(OP_NAMES)))
    a, b = op.parse(words[1:], ncpu)
    return op.kind, a, b


def markdown_table() -> str:
    """The README's op table (`make docs` writes it; a test compares)."""
    rows = ["| op | model | source | Promela |", "|---|---|---|---|"]
    for op in sorted(OPS, key=lambda op: op.name):
        syntax = op.syntax.replace("|", "\\|")
        promela = "translated" if not op.promela else \
            "refused: " + op.promela
        rows.append(f"| `{syntax}` | {op.doc} | {op.source} | {promela} |")
    return "\n".join(rows) + "\n"
