"""Memory ops (paging.py): loading a page table into CR3 and touching a
region the way kernel code does. Both need the scenario's `[memory]`."""

from typing import Final

from .arch import PF
from .delivery import raise_event
from .grammar import OpSyntaxError
from .machine import R_NONE, Machine
from .op import Example, Op, no_gate
from .outcome import OK
from .paging import (
    KIND_NAMES,
    REGIONS,
    TABLES,
    access_faults,
    write_cr3,
)

WRITE_CR3: Final = 51
ACCESS: Final = 52

REFUSAL: Final = ("page tables and regions ([memory]) are not in"
                  " runtime.pml")

KERNEL_ONLY: Final = (("kernel", "text:rxg data:rwg percpu:rwg stack:rwg"
                       " estack:rwg desc:rg control:rxg"),
                      ("kexec", "text:rx control:rwx ident:rwx"))


class WriteCr3(Op):
    def __init__(self) -> None:
        super().__init__(
            WRITE_CR3, "write_cr3", "write_cr3 " + "|".join(TABLES),
            "MOV to CR3 of a `[memory]` page table (PCID 0): the TLB keeps"
            " only the global entries, and only while CR4.PGE = 1",
            "SDM Vol. 3A 4.10.4.1; LX arch/x86/include/asm/special_insns.h"
            " write_cr3",
            reads=0, promela=REFUSAL,
            examples=(
                # d144d8a65286: the old kernel's read-only global entry for
                # the control page outlives the switch to the kexec table
                Example(("access control read", "write_cr3 kexec",
                         "lidt null", "access control write"),
                        "triple_fault", (
                            "cpu0: access control write",
                            "write of control: a global TLB entry from an"
                            " earlier CR3 (read-only) may still be used"
                            " -> #PF",
                            *no_gate("#PF", "null")),
                        memory=KERNEL_ONLY),
                Example(("write_cr3 kexec", "mov_cr4 -pge",
                         "access control write"), "ok", memory=KERNEL_ONLY),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1 or args[0].lower() not in TABLES:
            raise OpSyntaxError("write_cr3 needs a page table",
                                "write_cr3 " + "|".join(TABLES),
                                "declare it under [memory.tables] and name"
                                " it, e.g. 'write_cr3 trampoline'")
        return TABLES.index(args[0].lower()), 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        write_cr3(m, st, base, a)
        return OK


class Access(Op):
    def __init__(self) -> None:
        super().__init__(
            ACCESS, "access", "access REGION read|write|fetch",
            "a supervisor access kernel code makes to a region (" +
            ", ".join(REGIONS) + "): #PF where the loaded table or a global"
            " TLB entry left from an earlier CR3 forbids it",
            "SDM Vol. 3A 4.6.1, 4.7, 4.10.2.4",
            promela=REFUSAL,
            examples=(
                Example(("lidt full", "ltr", "tss_setup_ist",
                         "write_cr3 kexec", "access stack write"),
                        "triple_fault", (
                            "cpu0: access stack write",
                            "write of stack through the kexec page table:"
                            " not mapped -> #PF",
                            "#PF: read of desc through the kexec page table:"
                            " not mapped -> #PF",
                            "#PF while delivering #PF -> #DF (SDM table"
                            " 6-5)",
                            "#DF: read of desc through the kexec page table:"
                            " not mapped -> #PF",
                            "#PF while delivering #DF -> SHUTDOWN (triple"
                            " fault)"),
                        memory=KERNEL_ONLY),
                Example(("lidt full", "ltr", "tss_setup_ist",
                         "write_cr3 trampoline", "access stack write"),
                        "triple_fault", (
                            "cpu0: access stack write",
                            "write of stack through the trampoline page"
                            " table: not mapped -> #PF",
                            "#PF: write of stack through the trampoline page"
                            " table: not mapped -> #PF",
                            "#PF while delivering #PF -> #DF (SDM table"
                            " 6-5)",
                            "#DF: write of estack through the trampoline"
                            " page table: not mapped -> #PF",
                            "#PF while delivering #DF -> SHUTDOWN (triple"
                            " fault)"),
                        memory=(("kernel", "text:rxg data:rwg stack:rwg"
                                 " estack:rwg desc:rg"),
                                ("trampoline", "text:rx desc:r ident:rwx"))),
                Example(("access text fetch", "access data write"), "ok",
                        memory=KERNEL_ONLY),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 2 or args[0].lower() not in REGIONS \
                or args[1].lower() not in KIND_NAMES:
            raise OpSyntaxError("access needs a region and a kind",
                                "access " + "|".join(REGIONS)
                                + " read|write|fetch",
                                "e.g. 'access stack write' for a push")
        return REGIONS.index(args[0].lower()), \
            KIND_NAMES.index(args[1].lower())

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if not m.paging or not access_faults(m, st, base, a, b, False, chain):
            return OK
        # rule: memory-regions
        return raise_event(m, st, base, PF, False, R_NONE, chain)


def memory_ops() -> list[Op]:
    return [WriteCr3(), Access()]
