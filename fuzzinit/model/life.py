"""A CPU's life after its first start: where an offline CPU is parked, what
INIT resets, and which kernel image each value belongs to.

F_LIFE packs, per CPU:
- bits 0-1: the park loop of an offline CPU (PARK_*), 0 while it runs or
  before its first start or after an INIT (wait-for-SIPI);
- bits 4-7, 8-11, 12-15: the image (IMAGES) of the code the CPU runs, of
  the IDT its IDTR points at and of the FRED entry point in FRED_CONFIG.

G_GONE has bit i set while image i's memory does not hold it: `next`
before a `replace_image` copies it in place, the image a copy overwrote.

Images are fixed names, like [memory]'s page tables: `kernel` is the one
that booted (kexec's old kernel, hibernation's restore kernel), `next`
the kernel it hands over to (kexec's new kernel, the hibernation image),
`control` a page no kernel copy overwrites (kexec's control page with
relocate_kernel and purgatory, the hibernation restore page), `firmware`
firmware code (EFI, the BIOS). A copy of a whole kernel image over
another is modelled as overwriting all of the old one [derived: the copy
loops of relocate_kernel and core_restore_code write every page of the
image to where it was linked; the old kernel sat at the same place].
"""

from typing import Final

from .machine import (
    APIC_EXTD,
    APIC_OFF,
    F_CR0,
    F_CR3,
    F_CR4,
    F_EFER,
    F_FLAGS,
    F_FRED_CONFIG,
    F_IDT,
    F_LIFE,
    F_MMU,
    F_TSS,
    G_GONE,
    HANDLED_SHIFT,
    IBT_ON,
    IDT_NONE,
    IDT_NULL,
    IDT_REAL,
    ONLINE,
    STARTED,
    TSC_AUX_GUEST,
    UCODE,
    Machine,
)

TSS_LOADED: Final = 1      # F_TSS bit 0: TR holds this CPU's TSS

PARK_MASK: Final = 0x3
PARK_HLT: Final = 1       # hlt_play_dead(): HLT with IF = 0
PARK_MWAIT: Final = 2     # mwait_play_dead(): MONITOR a line, MWAIT, loop
PARKS: Final[tuple[str, ...]] = ("", "hlt", "mwait")

CODE_SHIFT: Final = 4
IDT_SHIFT: Final = 8
FRED_SHIFT: Final = 12

NEXT: Final = 1
IMAGES: Final[tuple[str, ...]] = ("kernel", "next", "control", "firmware")
# `next` is not where it was linked until a copy puts it there.
GONE_AT_START: Final = 1 << NEXT

# What INIT leaves alone in F_FLAGS: the APIC's mode (IA32_APIC_BASE is not
# changed by INIT: SDM Vol. 3A 10.1.1 table 10-1 note; "x2APIC State
# Transitions"), IA32_S_CET.ENDBR_EN (an MSR: "all other MSRs" keep their
# values [assumed: the CET chapter does not list INIT]), IA32_TSC_AUX (an
# MSR too), the microcode update ("maintained across a processor INIT": SDM
# Vol. 3A 10.11.6.1) and the record of which stub handlers ran (not CPU
# state).
KEPT_BY_INIT: Final = APIC_EXTD | APIC_OFF | UCODE | IBT_ON | TSC_AUX_GUEST


# rule: offline-init
def park_cpu(st: list[int], base: int, loop: int) -> None:
    """The end of a life (`offline`, `stop_this_cpu`): the online bit
    cleared, the CPU in park `loop` (PARK_HLT, PARK_MWAIT), registers
    kept."""
    st[base + F_FLAGS] &= ~(STARTED | ONLINE)
    st[base + F_LIFE] = st[base + F_LIFE] & ~PARK_MASK | loop


def park(life: int) -> int:
    return life & PARK_MASK


def image(life: int, shift: int) -> int:
    return life >> shift & 0xF


def gone(m: Machine, st: list[int], img: int) -> bool:
    return (st[m.glob + G_GONE] >> img & 1) != 0


def init_cpu(st: list[int], base: int) -> None:
    """INIT (SDM Vol. 3A 10.1.1, table 10-1): CR0/CR3/CR4, EFER [KVM
    kvm_vcpu_reset zeroes it; the table does not list it], IDTR (base 0,
    limit 0xFFFF), GDTR, TR, RFLAGS, the TLBs go back to reset values,
    NMI blocking is cleared [assumed: as KVM's vCPU reset does] and the
    CPU waits for a SIPI. "All other MSRs" are unchanged: the FRED MSRs
    [assumed: the FRED spec does not say; the row covers them], the GHCB
    MSR. The TSS's IST slots are kernel memory, TR is not: a later `ltr`
    finds them set. Kernel memory - every global and per-CPU variable -
    is not touched."""
    kept = st[base + F_FLAGS] & (KEPT_BY_INIT | -(1 << HANDLED_SHIFT))
    for f in (F_CR0, F_CR3, F_CR4, F_EFER, F_IDT, F_MMU):
        st[base + f] = 0
    # FRED_CONFIG stays, and with it the image its entry point is in.
    st[base + F_LIFE] &= 0xF << FRED_SHIFT
    st[base + F_TSS] &= ~TSS_LOADED
    st[base + F_FLAGS] = kept


# The ops that load IDTR and FRED_CONFIG (ops_idt.LIDT, ops_msr.WRMSR and
# WRMSR_SAFE; life.py cannot import the op modules, which import it).
LIDT_KIND: Final = 11
WRMSR_KINDS: Final = (9, 41)
MSR_FRED_CONFIG: Final = 0x1D4


def tag_loads(st: list[int], base: int, kind: int, a: int, idt: int,
              config: int) -> None:
    """After an op on a running CPU: an IDT or FRED entry point it just
    loaded (or changed as a side effect) belongs to the image its code
    runs in."""
    life = st[base + F_LIFE]
    code = image(life, CODE_SHIFT)
    # rule: kernel-images
    if kind == LIDT_KIND or st[base + F_IDT] != idt:
        life = life & ~(0xF << IDT_SHIFT) | code << IDT_SHIFT
    # rule: kernel-images
    if kind in WRMSR_KINDS and a == MSR_FRED_CONFIG or \
            st[base + F_FRED_CONFIG] != config:
        life = life & ~(0xF << FRED_SHIFT) | code << FRED_SHIFT
    st[base + F_LIFE] = life


def stale_handler(m: Machine, st: list[int], base: int, fred: bool,
                  what: str, chain: list[str]) -> bool:
    """Whether delivering an event would fetch a gate or entry point from
    an image that is gone: the bytes there are the other image's, and
    the model takes the failing choice - the CPU jumps into them and
    shuts down [derived: SDM Vol. 3A 6.14.1 reads the gate from IDTR's
    base; the FRED spec jumps to FRED_CONFIG's page; with the same build
    on both sides the bytes may even match, which the model does not
    assume]."""
    life = st[base + F_LIFE]
    if fred:
        img = image(life, FRED_SHIFT)
        where = "FRED_CONFIG's entry point"
    else:
        if st[base + F_IDT] in (IDT_NONE, IDT_NULL, IDT_REAL):
            return False   # no kernel memory behind these (delivery.py)
        img = image(life, IDT_SHIFT)
        where = "the IDT IDTR points at"
    if not gone(m, st, img):
        return False
    # rule: kernel-images
    chain.append(f"{what}: {where} is in {IMAGES[img]}'s memory, which"
                 " holds another image now: the CPU runs whatever is there"
                 " -> taken as SHUTDOWN (triple fault) [derived]")
    return True


def wild_code(m: Machine, st: list[int], cpu: int, base: int,
              how: str, chain: list[str]) -> bool:
    """Whether this CPU's code is in an image that is gone: its next
    instruction is the other image's bytes."""
    img = image(st[base + F_LIFE], CODE_SHIFT)
    if not gone(m, st, img):
        return False
    # rule: kernel-images
    chain.append(f"cpu{cpu} {how} {IMAGES[img]}'s code, whose memory holds"
                 " another image now: it runs whatever is there -> taken"
                 " as SHUTDOWN (triple fault) [derived; d7893093a741 and"
                 " ec527c318036 report triple faults]")
    return True


def state_words(m: Machine, st: list[int], base: int) -> dict[str, str]:
    """For reports: the park loop and the image of each value."""
    life = st[base + F_LIFE]
    out = {}
    if park(life):
        out["parked"] = PARKS[park(life)]
    if m.images:
        out["code"] = IMAGES[image(life, CODE_SHIFT)]
        out["idt_image"] = IMAGES[image(life, IDT_SHIFT)]
        out["fred_image"] = IMAGES[image(life, FRED_SHIFT)]
    return out
