"""Ops on the control registers: raw MOVs, the kernel's CR helpers with
CR pinning, and the attacker's gadget into native_write_cr4()."""

from typing import Final

from .arch import CR4_BITS
from .grammar import CR0_BITS, bits, number, signed_bits
from .machine import F_CR0, F_CR3, F_CR4, Machine
from .op import PIN, Example, Op, no_gate, one_number
from .outcome import OK
from .pinning import (
    cr4_init,
    mov_cr0,
    mov_cr4,
    native_write_cr0,
    native_write_cr4,
    setup_cr_pinning,
)

MOV_CR0: Final = 0
MOV_CR4: Final = 1
MOV_CR3: Final = 2
CR0_SET: Final = 3
CR0_CLEAR: Final = 4
CR4_SET: Final = 5
CR4_CLEAR: Final = 6
CR4_INIT: Final = 7
SETUP_CR_PINNING: Final = 8
CR4_GADGET: Final = 31


class MovCr4(Op):
    def __init__(self) -> None:
        super().__init__(
            MOV_CR4, "mov_cr4", "mov_cr4 +BIT -BIT..",
            "raw MOV to CR4 (no pinning) with the #GP checks; a CR4 BIT is a"
            " name or `bitN` (0-63): a reserved or unenumerated bit is #GP",
            "SDM Vol. 2 MOV CR; SDM Vol. 3A 2.5; KVM kvm_set_cr4",
            samples=("mov_cr4 -pae", "mov_cr4 +cet +pcide", "mov_cr4 +mce",
                     "mov_cr4 -mce", "mov_cr4 +bit40", "mov_cr4 +bit15"),
            examples=(
                Example(("mov_cr4 -pae",), "triple_fault", (
                    "cpu0: mov_cr4 -pae",
                    "MOV to CR4 clears CR4.PAE in long mode -> #GP(0)",
                    *no_gate("#GP", "none"))),
                Example(("mov_cr4 +fred",), "ok", features=("fred",)),
                Example(("mov_cr4 +bit28",), "triple_fault", (
                    "cpu0: mov_cr4 +bit28",
                    "MOV to CR4 sets a reserved or unenumerated CR4 bit"
                    " -> #GP(0)",
                    *no_gate("#GP", "none"))),
                Example(("mov_cr4 +bit32",), "ok", features=("fred",)),
                Example(("mov_cr4 +mce", "lidt null", "mov_cr4 -mce"),
                        "triple_fault", (
                    "cpu0: mov_cr4 -mce",
                    "MOV to CR4 clears CR4.MCE in a TDX guest -> #VE",
                    *no_gate("#VE", "null")),
                    guest="tdx"),
                Example(("mov_cr4 +mce", "lidt full", "mov_cr4 -mce"),
                        "unhandled", (
                    "cpu0: mov_cr4 -mce",
                    "MOV to CR4 clears CR4.MCE in a TDX guest -> #VE",
                    "#VE (CR4 write): no handler emulates it, die()"),
                    guest="tdx"),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return signed_bits(args, CR4_BITS, "CR4", True)

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        return mov_cr4(m, st, base, (st[base + F_CR4] | a) & ~b, chain)


class MovCr0(Op):
    def __init__(self) -> None:
        super().__init__(
            MOV_CR0, "mov_cr0", "mov_cr0 +BIT -BIT..",
            "raw MOV to CR0 (no pinning) with the #GP checks; a bit by name"
            " or as `bitN` (0-63): bits 63:32 are #GP, NW without CD is #GP,"
            " the reserved bits 6-15, 17, 19-28 are left unchanged",
            "SDM Vol. 2 MOV CR; SDM Vol. 3A 2.5, 10.9.5; KVM kvm_set_cr0",
            samples=("mov_cr0 -pg", "mov_cr0 -pe", "mov_cr0 +bit40",
                     "mov_cr0 +nw", "mov_cr0 +cd +nw", "mov_cr0 +bit7 +ts",
                     "mov_cr0 +bit40 -bit40"),
            examples=(
                Example(("mov_cr0 -wp",), "ok"),
                Example(("mov_cr0 -pg",), "triple_fault", (
                    "cpu0: mov_cr0 -pg",
                    "MOV to CR0 clears CR0.PG in 64-bit mode -> #GP(0)",
                    *no_gate("#GP", "none"))),

                Example(("lidt gates 13", "mov_cr0 +bit32", "mov_cr0 +nw",
                         "mov_cr0 +bit7"), "ok", handled=((0, 13),)),
                Example(("mov_cr0 +nw",), "triple_fault", (
                    "cpu0: mov_cr0 +nw",
                    "MOV to CR0 sets CR0.NW with CR0.CD = 0 -> #GP(0)",
                    *no_gate("#GP", "none"))),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return signed_bits(args, CR0_BITS, "CR0", True)

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        return mov_cr0(m, st, base, (st[base + F_CR0] | a) & ~b, chain)


class MovCr3(Op):
    def __init__(self) -> None:
        super().__init__(
            MOV_CR3, "mov_cr3", "mov_cr3 N",
            "set CR3[11:0], the PCID bits (the page-table base is not"
            " modelled)",
            "SDM Vol. 3A 4.10.1",
            reads=0, samples=("mov_cr3 1", "mov_cr3 0xfff"),
            examples=(
                Example(("mov_cr3 1", "mov_cr4 +pcide"), "triple_fault", (
                    "cpu0: mov_cr4 +pcide",
                    "MOV to CR4 sets CR4.PCIDE with CR3[11:0] != 0 -> #GP(0)",
                    *no_gate("#GP", "none")),
                    features=("pcid",)),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        # The model keeps CR3[11:0], the PCID (SDM Vol. 3A 4.10.1).
        return number(one_number(self.name, args), "mov_cr3", 0xFFF), 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        st[base + F_CR3] = a & 0xFFF
        return OK


class Cr4Bits(Op):
    """`cr4_set`/`cr4_clear`: cr4_update_irqsoff() writes only when the
    value changes (LX arch/x86/mm/tlb.c): no write, no pinning fix-up."""

    def __init__(self, kind: int, name: str, examples: tuple[Example, ...]
                 ) -> None:
        super().__init__(
            kind, name, f"{name} BIT..",
            f"`{name}_bits()` -> `native_write_cr4()` with CR pinning",
            "LX arch/x86/mm/tlb.c cr4_update_irqsoff; kernel/cpu/common.c"
            " native_write_cr4",
            samples=(f"{name} smep", f"{name} fsgsbase"), examples=examples)

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return bits(args, CR4_BITS, "CR4", True), 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        cr4 = st[base + F_CR4]
        new = cr4 | a if self.kind == CR4_SET else cr4 & ~a
        if new == cr4:
            return OK
        return native_write_cr4(m, st, base, new, chain, warnings)


class Cr0Bits(Op):
    """`cr0_set`/`cr0_clear`: write_cr0() -> native_write_cr0()."""

    def __init__(self, kind: int, name: str, examples: tuple[Example, ...]
                 ) -> None:
        super().__init__(
            kind, name, f"{name} BIT..",
            "`native_write_cr0()` (CR0.WP pinned)",
            "LX arch/x86/kernel/cpu/common.c native_write_cr0",
            samples=(f"{name} wp",), examples=examples)

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return bits(args, CR0_BITS, "CR0", True), 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        cr0 = st[base + F_CR0]
        new = cr0 | a if self.kind == CR0_SET else cr0 & ~a
        return native_write_cr0(m, st, base, new, chain, warnings)


class Cr4Init(Op):
    def __init__(self) -> None:
        super().__init__(
            CR4_INIT, "cr4_init",  "cr4_init",
            "`cr4_init()`: PCIDE if PCID is enumerated, the pinned bits if"
            " the key is on",
            "LX arch/x86/kernel/cpu/common.c cr4_init",
            samples=("cr4_init",),
            examples=(
                Example(("cr4_set fred", "setup_cr_pinning", "start 1",
                         "cpu1: cr4_init"), "ok", features=("fred",)),
                Example(("setup_cr_pinning", "cr4_init"), "warn", (
                    "WARN: cr4_init() with CR pinning in force:"
                    " WARN_ON_ONCE(cr_pinning_enabled())",),
                    kernel=(("pinning", '"online"'),)),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        return cr4_init(m, st, base, chain, warnings)


class SetupCrPinning(Op):
    def __init__(self) -> None:
        super().__init__(
            SETUP_CR_PINNING, "setup_cr_pinning", "setup_cr_pinning",
            "pinned bits = this CPU's CR4 & the pinning mask; key on",
            "LX arch/x86/kernel/cpu/common.c setup_cr_pinning",
            writes=PIN, samples=("setup_cr_pinning",),
            examples=(
                Example(("cr4_set smep", "setup_cr_pinning",
                         "cr4_clear smep"), "warn", (
                    "WARN: pinned CR4 bits changed: 0x100000!?",),
                    features=("smep",)),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        setup_cr_pinning(m, st, base)
        return OK


class Cr4Gadget(Op):
    def __init__(self) -> None:
        super().__init__(
            CR4_GADGET, "cr4_gadget", "cr4_gadget +BIT/-BIT..",
            "attacker capability: a ROP jump to the MOV to CR4 inside"
            " `native_write_cr4()`, whose own pinning check then runs",
            "LX arch/x86/kernel/cpu/common.c native_write_cr4; a3e93cac2531",
            samples=("cr4_gadget -smep",),
            trigger_words=(2, 99),
            examples=(
                Example(("cr4_set smep", "setup_cr_pinning",
                         "cr4_gadget -smep"), "warn", (
                    "WARN: pinned CR4 bits changed: 0x100000!?",),
                    features=("smep",)),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return signed_bits(args, CR4_BITS, "CR4", True)

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        return native_write_cr4(m, st, base, (st[base + F_CR4] | a) & ~b,
                                chain, warnings)


def cr_ops() -> list[Op]:
    return [
        MovCr0(), MovCr4(), MovCr3(),
        Cr0Bits(CR0_SET, "cr0_set", (
            Example(("cr0_clear wp", "cr0_set wp"), "ok"),)),
        Cr0Bits(CR0_CLEAR, "cr0_clear", (
            Example(("setup_cr_pinning", "cr0_clear wp"), "warn", (
                "WARN: CR0 WP bit went missing!?",)),)),
        Cr4Bits(CR4_SET, "cr4_set", (
            Example(("cr4_set fred",), "triple_fault", (
                "cpu0: cr4_set fred",
                "MOV to CR4 sets a reserved or unenumerated CR4 bit -> #GP(0)",
                *no_gate("#GP", "none"))),)),
        Cr4Bits(CR4_CLEAR, "cr4_clear", (
            Example(("cr4_clear fred",), "ok"),)),
        Cr4Init(), SetupCrPinning(), Cr4Gadget(),
    ]
