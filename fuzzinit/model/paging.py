"""Memory as named regions: a few page tables, each mapping the regions
init code touches with permissions, the TLB's global entries that outlive
a CR3 switch, and the #PF an access or an event delivery takes.

A scenario's `[memory]` declares the tables (`Machine.page_tables`, one
nibble of P/W/X/U per region, and `Machine.page_globals`, the regions a
table maps with G = 1). Without `[memory]` nothing here runs (`m.paging`
is False) and every access is taken as mapped, as before.

Per CPU, F_MMU holds the loaded table (bits 0-3) and, from bit 4 on, one
nibble per region: a global TLB entry left by an earlier CR3, with the
permissions it was cached with (0: none).

The TLB rule, **[derived]**: a processor may cache any translation of the
loaded table and keep a global one across MOV to CR3 (SDM Vol. 3A 4.10.2.4,
4.10.4.1), and may also drop any entry at any time (4.10.2.2). Where a
surviving global entry and the loaded table disagree, either may be used:
the model takes the one that faults, so an access is safe only when both
allow it.
"""

from typing import Final

from .arch import CR0_PG, CR0_WP, CR4_PGE, CR4_SMAP, CR4_SMEP, EFER_LMA, EFER_NXE
from .machine import AC_SET, F_CR0, F_CR3, F_CR4, F_EFER, F_FLAGS, F_MMU, Machine

# Regions (bit positions of a table's nibbles). LX Documentation/arch/x86/
# x86_64/mm.rst places them: the kernel image (text, data) in pgd 511, the
# direct map (per-CPU areas, real_mode_header, ...) from pgd 273, vmalloc
# (VMAP_STACK stacks) at pgd 402, the cpu_entry_area (IDT, GDT, TSS, IST
# stacks) at pgd 508, and the low identity map of the trampolines.
REGIONS: Final[tuple[str, ...]] = (
    "text", "data", "percpu", "stack", "estack", "desc", "directmap",
    "ident", "control", "firmware", "user")
STACK: Final = 3
ESTACK: Final = 4    # IST stacks and FRED_RSP1..3 (cpu_entry_area)
DESC: Final = 5      # the IDT and GDT the CPU reads on delivery
# Page tables a scenario may declare; `kernel` is init_top_pgt/swapper.
TABLES: Final[tuple[str, ...]] = (
    "kernel", "trampoline", "kexec", "efi", "resume", "early")

# A nibble: present (readable), writable, executable (XD = 0), user.
P: Final = 1
W: Final = 2
X: Final = 4
U: Final = 8
PERM_LETTERS: Final[dict[str, int]] = {"r": P, "w": W, "x": X, "u": U}

READ: Final = 0
WRITE: Final = 1
FETCH: Final = 2
KIND_NAMES: Final[tuple[str, ...]] = ("read", "write", "fetch")

STALE_SHIFT: Final = 4
TABLE_MASK: Final = 0xF


def entry(m: Machine, table: int, region: int) -> int:
    return (m.page_tables[table] >> (4 * region)) & 0xF


def _denied(st: list[int], base: int, e: int, kind: int,
            implicit: bool) -> str:
    """Why a supervisor access through entry `e` faults, or ""."""
    if not e & P:
        return "not mapped"
    if not e & X and not st[base + F_EFER] & EFER_NXE:
        # XD = 1 with IA32_EFER.NXE = 0 is a reserved bit (SDM Vol. 3A 4.5
        # tables "otherwise reserved", #PF with RSVD: 4.7).
        return "XD set while EFER.NXE = 0 (a reserved bit)"
    if kind == FETCH and not e & X:
        return "execute-disable"   # SDM Vol. 3A 4.6.1
    if kind == WRITE and not e & W and st[base + F_CR0] & CR0_WP:
        return "read-only"         # CR0.WP = 1: supervisor too (4.6.1)
    if e & U:
        cr4 = st[base + F_CR4]
        if kind == FETCH and cr4 & CR4_SMEP:
            return "a user page with CR4.SMEP"   # SDM Vol. 3A 4.6.1
        if kind != FETCH and cr4 & CR4_SMAP and (
                implicit or not st[base + F_FLAGS] & AC_SET):
            # SMAP: implicit accesses always, explicit ones unless AC = 1
            # (SDM Vol. 3A 4.6.1).
            return "a user page with CR4.SMAP and EFLAGS.AC = 0"
    return ""


def access_faults(m: Machine, st: list[int], base: int, region: int,
                  kind: int, implicit: bool, chain: list[str]) -> bool:
    """Whether a supervisor access to `region` takes #PF; says why. Only
    with paging on in IA-32e mode (legacy paging is not modelled)."""
    if not st[base + F_CR0] & CR0_PG or not st[base + F_EFER] & EFER_LMA:
        return False
    mmu = st[base + F_MMU]
    table = mmu & TABLE_MASK
    what = f"{KIND_NAMES[kind]} of {REGIONS[region]}"
    why = _denied(st, base, entry(m, table, region), kind, implicit)
    # rule: memory-regions
    if why:
        chain.append(f"{what} through the {TABLES[table]} page table: {why}"
                     " -> #PF")
        return True
    stale = (mmu >> (STALE_SHIFT + 4 * region)) & 0xF
    if stale:
        why = _denied(st, base, stale, kind, implicit)
        # rule: memory-regions
        if why:
            # SDM Vol. 3A 4.10.2.4, 4.10.4.1, 4.10.4.3 ("spurious" #PF).
            chain.append(f"{what}: a global TLB entry from an earlier CR3"
                         f" ({why}) may still be used -> #PF")
            return True
    return False


# rule: memory-regions
def write_cr3(m: Machine, st: list[int], base: int, table: int) -> None:
    """MOV to CR3 of `table`'s root, PCID 0: every TLB entry but the global
    ones goes; with CR4.PGE = 1 the loaded table's global translations may
    stay cached (SDM Vol. 3A 4.10.4.1). An entry already left over keeps
    its permissions **[assumed]** (the model keeps one per region)."""
    mmu = st[base + F_MMU]
    stale = mmu >> STALE_SHIFT
    if st[base + F_CR4] & CR4_PGE:
        old = mmu & TABLE_MASK
        glob = m.page_globals[old]
        nxe = st[base + F_EFER] & EFER_NXE
        for region in range(len(REGIONS)):
            e = entry(m, old, region)
            # Only valid translations are cached: P = 1, no reserved bit
            # (SDM Vol. 3A 4.10.2.3).
            if glob >> region & 1 and e & P and (e & X or nxe) \
                    and not (stale >> (4 * region)) & 0xF:
                stale |= e << (4 * region)
    else:
        stale = 0
    st[base + F_MMU] = table | stale << STALE_SHIFT
    st[base + F_CR3] = 0


# rule: memory-regions
def flush_all(st: list[int], base: int) -> None:
    """Drop every TLB entry, global ones too: MOV to CR4 changing PGE or
    clearing PCIDE, MOV to CR0 changing PG (SDM Vol. 3A 4.10.4.1)."""
    st[base + F_MMU] &= TABLE_MASK
