"""What an op is: one object holding everything fuzzinit knows about it.

Each op of the scenario vocabulary is one subclass of `Op`, in the ops_*
module of its family, and nowhere else:

- grammar: `name`, `syntax` and `parse()` (text arguments -> the ints a, b);
- docs: `doc` and `source` (the README's op table is generated from them:
  `make docs`, checked by tests/test_readme.py);
- semantics: `apply()`, one pure step over the flat state;
- what the partial-order reduction may assume: `reads`, `writes`;
- Promela: `promela` is "" when export/runtime.pml translates the op (then
  `samples` feed the SPIN lockstep test), or the reason the export refuses
  a scenario that uses it (exit 2 naming the op); `refusal()` may refuse
  one form only (`lidt gates ...`);
- tests: `examples`, each an ordering with its exact outcome and chain,
  run by tests/test_ops.py;
- whether a scenario may use it as a trigger: `trigger_words`.

Adding an op is one class in one module plus its line in vocabulary.OPS.
"""

from .grammar import OpSyntaxError
from .machine import Machine

# Shared resources an op may read or write, for the partial-order reduction
# (fuzzinit/explore/independence.py). An op's own CPU's fields are never
# listed: only what another CPU could see.
PIN = 1       # G_KEY, G_PINNED_BITS (pinning.py)
GFLAGS = 2    # G_FLAGS other than the WARNED_* bits
ONLINE = 4    # a CPU's online bit
BLOCK = 8     # another CPU's fields
CPUS = 16     # reads every CPU's fields (a broadcast event)
# The default: may deliver an exception, print or check pinning.
SHARED = PIN | GFLAGS


class Example:
    """One ordering that shows what an op does. `events` are op strings,
    "op" for cpu0 or "cpuN: op"; the test gives each CPU the program its
    events spell, starts no CPU itself, and runs exactly this ordering.
    `outcome` is the outcome's name, `chain` the run's whole chain,
    `handled` the (cpu, vector) of each stub handler that ran (Result)."""

    def __init__(self, events: tuple[str, ...], outcome: str,
                 chain: tuple[str, ...] = (), guest: str = "bare",
                 features: tuple[str, ...] = (),
                 kernel: tuple[tuple[str, str], ...] = (),
                 platform: tuple[tuple[str, str], ...] = (),
                 handled: tuple[tuple[int, int], ...] = (),
                 memory: tuple[tuple[str, str], ...] = ()) -> None:
        self.events = events
        self.outcome = outcome
        self.chain = chain
        self.handled = handled
        self.guest = guest
        self.features = features
        self.kernel = kernel        # [kernel] key -> TOML value text
        self.platform = platform    # more [platform] keys, as for kernel
        # [memory.tables]: (table, "region:perms ..."); the first is loaded
        self.memory = memory


class Op:
    """One op of the vocabulary (see the module docstring)."""

    def __init__(self, kind: int, name: str, syntax: str, doc: str,
                 source: str, reads: int = SHARED, writes: int = 0,
                 promela: str = "", samples: tuple[str, ...] = (),
                 examples: tuple[Example, ...] = (),
                 trigger_words: tuple[int, int] = (0, 0)) -> None:
        self.kind = kind
        self.name = name
        self.syntax = syntax
        self.doc = doc
        self.source = source
        self.reads = reads
        self.writes = writes
        self.promela = promela
        self.samples = samples
        self.examples = examples
        # As a trigger ([[orderings.trigger]] kind): how many words the
        # kind may have, (0, 0) if it is not one.
        self.trigger_words = trigger_words

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        """The op's arguments as (a, b); this default takes none."""
        if args:
            raise OpSyntaxError(f"{self.name} takes no argument",
                                f"plain {self.name!r}",
                                f"write just {self.name!r}")
        return 0, 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        """One step on a started CPU: an outcome (OK, a failure, INVALID)."""
        raise NotImplementedError(self.name)

    def refusal(self, a: int, b: int) -> str:
        """Why the Promela export refuses this op with these arguments, or
        "" if runtime.pml translates it; an op with one form of its own
        that is not translated overrides this."""
        return self.promela


# How delivery.try_deliver names an IDT that has no gate at all.
_NO_GATE = {"none": "through the reset IDT (no LIDT yet): no valid gate",
            "null": "through the invalidated IDT (limit 0)"}


def ring3_no_rsp0(*note: str) -> tuple[str, ...]:
    """The end of an example's chain: an NMI from ring 3 under FRED with
    FRED_STKLVLS = 0 and FRED_RSP0 = 0 - every frame push faults, #PF, #DF,
    shutdown. `note` follows the first fault (ops_percpu's cache line)."""
    lines = [f"{v} from ring 3: FRED stack level 0 and FRED_RSP0 = 0: the"
             " frame push faults -> #PF" for v in ("NMI", "#PF", "#DF")]
    return (lines[0], *note,
            "#PF while delivering NMI is handled serially (SDM table 6-5)",
            lines[1], "#PF while delivering #PF -> #DF (SDM table 6-5)",
            lines[2], "#PF while delivering #DF -> SHUTDOWN (triple fault)")


def no_gate(vector: str, idt: str) -> tuple[str, ...]:
    """The end of an example's chain: `vector` meets an IDT with no gates
    ('none' or 'null'), the #GP that raises finds none either, nor does
    #DF: shutdown. A benign first event (NMI, #UD, #VC) takes the #GP
    serially, a contributory or page-fault one makes it #DF at once (SDM
    table 6-5)."""
    where = _NO_GATE[idt]
    lines = [f"{vector} {where} -> #GP"]
    # Interrupts ("vector N") are benign too (SDM Vol. 3A table 6-4).
    if vector in ("NMI", "#UD", "#VC", "#BP") or vector.startswith("vector "):
        lines += [f"#GP while delivering {vector} is handled serially (SDM"
                  " table 6-5)", f"#GP {where} -> #GP"]
        vector = "#GP"
    return (*lines, f"#GP while delivering {vector} -> #DF (SDM table 6-5)",
            f"#DF {where} -> #GP",
            "#GP while delivering #DF -> SHUTDOWN (triple fault)")


def one_number(name: str, args: list[str]) -> str:
    """The single argument of `name N`."""
    if len(args) != 1:
        raise OpSyntaxError(f"{name} takes one number", f"{name} N",
                            f"write e.g. '{name} 1'")
    return args[0]
