"""The op grammar of scenario programs: text -> (kind, a, b).

One op per string: a name, then arguments separated by spaces. The README's
"Ops" table is the reference; `OP_HELP` below is what error messages show.
"""

from typing import Final

from fuzzinit.model import machine as mc
from fuzzinit.model.arch import CR0_PE, CR0_PG, CR0_WP, CR4_BITS, MSRS

# Symbolic values for WRMSR, the ones Linux writes (LX arch/x86/kernel/fred.c).
FRED_ENTRY: Final = 0xFFFFFFFF81000000 | (1 << 6)   # entry page | REDZONE(1)
FRED_STACK: Final = 0xFFFFFE0000010000              # a 64-byte aligned stack top
# cpu_init_fred_rsps(): #DB level 1, NMI 2, #MC 2, #DF 3 (FRED_STKLVL(v, l)).
FRED_STKLVLS_LINUX: Final = (1 << 2) | (2 << 4) | (2 << 36) | (3 << 16)
MSR_VALUE_SYMBOLS: Final[dict[str, int]] = {
    "entry": FRED_ENTRY, "stack": FRED_STACK, "linux": FRED_STKLVLS_LINUX,
}
CR0_BITS: Final[dict[str, int]] = {"pe": CR0_PE, "wp": CR0_WP, "pg": CR0_PG}
IDT_KINDS: Final[dict[str, int]] = {
    name: i for i, name in enumerate(mc.IDT_NAMES)}
IDT_KINDS["bringup_ghcb"] = mc.IDT_BRINGUP  # with #VC -> vc_boot_ghcb

# name -> (kind, argument shape)
NO_ARG: Final[dict[str, int]] = {
    "cr4_init": mc.CR4_INIT, "setup_cr_pinning": mc.SETUP_CR_PINNING,
    "ltr": mc.LTR, "tss_setup_ist": mc.TSS_SETUP_IST,
    "setup_ghcb": mc.SETUP_GHCB,
    "sev_es_init_vc_handling": mc.SEV_ES_INIT_VC_HANDLING,
    "cpuid": mc.CPUID, "port_io": mc.PORT_IO, "mmio": mc.MMIO,
    "rdgsbase": mc.RDGSBASE, "nmi": mc.NMI_EVENT, "pf": mc.PF_EVENT,
    "ve_info": mc.VE_INFO, "online": mc.ONLINE_OP,
    "patch_alternatives": mc.PATCH_ALTERNATIVES,
    "console_init": mc.CONSOLE_INIT,
    "clear_online": mc.CLEAR_ONLINE,
}
OP_HELP: Final = (
    "cr4_set BIT.., cr4_clear BIT.., cr0_set BIT.., cr0_clear BIT.., "
    "mov_cr4 +BIT/-BIT.., mov_cr0 +BIT/-BIT.., cr4_gadget +BIT/-BIT.., "
    "mov_cr3 N, wrmsr MSR VALUE, "
    "rdmsr MSR, lidt none|bringup|bringup_ghcb|early|full|null, printk [TEXT], "
    "start N, wait_online N, nop [TEXT], or one of " + ", ".join(sorted(NO_ARG)))
OP_NAMES: Final = tuple(sorted(set(NO_ARG) | {
    "cr4_set", "cr4_clear", "cr0_set", "cr0_clear", "mov_cr4", "mov_cr0",
    "mov_cr3", "wrmsr", "rdmsr", "lidt", "printk", "start", "wait_online",
    "nop", "cr4_gadget"}))


class OpSyntaxError(ValueError):
    """An op string that does not parse: (problem, expected, hint)."""

    def __init__(self, problem: str, expected: str, hint: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.expected = expected
        self.hint = hint


def _int(text: str, what: str, top: int) -> int:
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


def _bits(words: list[str], table: dict[str, int], what: str,
          shift: bool) -> int:
    mask = 0
    for word in words:
        name = word.lower()
        if name not in table:
            raise OpSyntaxError(f"unknown {what} bit {word!r}",
                                f"one of {', '.join(sorted(table))}",
                                _suggest(name, table))
        mask |= (1 << table[name]) if shift else table[name]
    if not words:
        raise OpSyntaxError(f"no {what} bit given", f"a {what} bit name",
                            f"add a bit, e.g. {next(iter(table))}")
    return mask


def _signed_bits(words: list[str], table: dict[str, int], what: str,
                 shift: bool) -> tuple[int, int]:
    sets: list[str] = []
    clears: list[str] = []
    for word in words:
        if word[:1] not in "+-" or len(word) < 2:
            raise OpSyntaxError(f"{word!r} has no + or - sign",
                                f"+BIT or -BIT, e.g. +{next(iter(table))}",
                                "prefix each bit with + (set) or - (clear)")
        (sets if word[0] == "+" else clears).append(word[1:])
    return (_bits(sets, table, what, shift) if sets else 0,
            _bits(clears, table, what, shift) if clears else 0)


def _suggest(word: str, options: dict[str, int] | tuple[str, ...]) -> str:
    import difflib
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"did you mean {close[0]!r}?" if close else "see the README's tables"


def parse_op(text: str, ncpu: int) -> tuple[int, int, int]:
    """Parse one op string; raise OpSyntaxError with a fix hint."""
    words = text.split()
    if not words:
        raise OpSyntaxError("empty op", "an op name", "remove the empty string")
    name, args = words[0].lower(), words[1:]
    if name in NO_ARG:
        if args:
            raise OpSyntaxError(f"{name} takes no argument",
                                f"plain {name!r}", f"write just {name!r}")
        return NO_ARG[name], 0, 0
    if name in ("printk", "nop"):
        return (mc.PRINTK if name == "printk" else mc.NOP), 0, 0
    if name in ("cr4_set", "cr4_clear"):
        kind = mc.CR4_SET if name == "cr4_set" else mc.CR4_CLEAR
        return kind, _bits(args, CR4_BITS, "CR4", True), 0
    if name in ("cr0_set", "cr0_clear"):
        kind = mc.CR0_SET if name == "cr0_set" else mc.CR0_CLEAR
        return kind, _bits(args, CR0_BITS, "CR0", False), 0
    if name == "mov_cr4":
        a, b = _signed_bits(args, CR4_BITS, "CR4", True)
        return mc.MOV_CR4, a, b
    if name == "cr4_gadget":
        a, b = _signed_bits(args, CR4_BITS, "CR4", True)
        return mc.CR4_GADGET, a, b
    if name == "mov_cr0":
        a, b = _signed_bits(args, CR0_BITS, "CR0", False)
        return mc.MOV_CR0, a, b
    if name in ("mov_cr3", "start", "wait_online"):
        if len(args) != 1:
            raise OpSyntaxError(f"{name} takes one number", f"{name} N",
                                f"write e.g. '{name} 1'")
        if name == "mov_cr3":
            # The model keeps CR3[11:0], the PCID (SDM Vol. 3A 4.10.1).
            return mc.MOV_CR3, _int(args[0], "mov_cr3", 0xFFF), 0
        value = _int(args[0], name, 1 << 63)
        if not 0 <= value < ncpu:
            raise OpSyntaxError(
                f"{name} {value}: there is no cpu {value}",
                f"a CPU number from 0 to {ncpu - 1}",
                "add a [[cpu]] table for it or fix the number")
        return (mc.START if name == "start" else mc.WAIT_ONLINE), value, 0
    if name in ("wrmsr", "rdmsr"):
        want = 2 if name == "wrmsr" else 1
        if len(args) != want:
            raise OpSyntaxError(
                f"{name} takes {want} argument{'s' if want > 1 else ''}",
                "wrmsr MSR VALUE" if want == 2 else "rdmsr MSR",
                "e.g. 'wrmsr FRED_CONFIG entry'")
        msr = args[0].upper()
        if msr not in MSRS:
            raise OpSyntaxError(f"unknown MSR {args[0]!r}",
                                f"one of {', '.join(MSRS)}",
                                _suggest(msr, tuple(MSRS)))
        if name == "rdmsr":
            return mc.RDMSR, MSRS[msr], 0
        value_text = args[1].lower()
        value = MSR_VALUE_SYMBOLS[value_text] if value_text in \
            MSR_VALUE_SYMBOLS else _int(args[1], f"wrmsr {msr}", (1 << 64) - 1)
        return mc.WRMSR, MSRS[msr], value
    if name == "lidt":
        if len(args) != 1 or args[0].lower() not in IDT_KINDS:
            raise OpSyntaxError("lidt needs an IDT kind",
                                "lidt none|bringup|bringup_ghcb|early|full|null",
                                "e.g. 'lidt full' for load_current_idt()")
        idt = args[0].lower()
        return mc.LIDT, IDT_KINDS[idt], int(idt == "bringup_ghcb")
    raise OpSyntaxError(f"unknown op {words[0]!r}", OP_HELP,
                        _suggest(name, OP_NAMES))


def canonical(text: str) -> str:
    """Whitespace-normalised op text: how traces and reports name an op."""
    return " ".join(text.split())
