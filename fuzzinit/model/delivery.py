"""Event delivery and escalation: IDT or FRED, #DF, shutdown (x86 only).

`try_deliver` answers one architectural question: does delivering vector v on
this CPU fault, and with what? `raise_event` applies the double-fault rules
around it and hands a delivered event to the kernel's handler (kernel.py).
"""

from typing import Final

from .arch import (
    BENIGN,
    CR0_PE,
    CR4_FRED,
    DF,
    EFER_LMA,
    GP,
    NMI,
    NP,
    PF,
    VC,
    VE,
    double_fault_pair,
    exception_class,
    fred_entry_page,
    fred_stack_level,
    vector_name,
)
from .handlers import handle, stub_handler
from .idt_table import (
    STUB,
    describe,
    has_gate,
    idt_name,
    is_table,
    limit,
    not_present,
)
from .idt_table import handler as table_handler
from .idt_table import ist as table_ist
from .life import stale_handler
from .machine import (
    F_CR0,
    F_CR4,
    F_EFER,
    F_FLAGS,
    F_FRED_CONFIG,
    F_FRED_RSP0,
    F_FRED_STKLVLS,
    F_IDT,
    F_PERCPU,
    F_TSS,
    GDT_NULL,
    IDT_BRINGUP,
    IDT_EARLY,
    IDT_FULL,
    IDT_NONE,
    IDT_NULL,
    IDT_REAL,
    PERCPU_FRED_RSP0,
    R_NONE,
    TDX,
    USER,
    VE_PENDING,
    VIA_FRED,
    VIA_STUB,
    Machine,
)
from .outcome import TRIPLE_FAULT, UNHANDLED
from .paging import DESC, ESTACK, READ, STACK, WRITE, access_faults

NO_FAULT: Final = -1
# try_deliver's answer when CR4.FRED = 1 and FRED_CONFIG holds no entry point.
FRED_NO_ENTRY: Final = -2
# ... when the gate it reads outside IA-32e mode leads somewhere the model
# does not know (a 64-bit gate read as a legacy one, the firmware's IVT).
LANDS_UNKNOWN: Final = -3

# Delivery paths, as seen by the kernel's handlers.

# Runtime IDT gates with an IST stack (LX arch/x86/kernel/idt.c def_idts):
# vector -> IST index (asm/page_64_types.h IST_INDEX_*, +1 in the gate).
IST_OF_VECTOR: Final[dict[int, int]] = {DF: 1, NMI: 2, 1: 3, 18: 4, VC: 5}


def try_deliver(m: Machine, st: list[int], base: int, vector: int,
                chain: list[str]) -> int:
    """Deliver `vector`: NO_FAULT, FRED_NO_ENTRY, or the vector of the fault
    raised during delivery (appending why to `chain`)."""
    if not m.paging:
        return _deliver(m, st, base, vector, chain)
    return _deliver_paged(m, st, base, vector, chain)


def _deliver_paged(m: Machine, st: list[int], base: int, vector: int,
                   chain: list[str]) -> int:
    """Delivery with `[memory]`: the CPU reads the gate (and the GDT) from
    `desc` and pushes the frame on `stack`, or on `estack` for an IST or a
    FRED stack level above 0; each is an implicit supervisor access that
    can #PF (SDM Vol. 3A 6.14.2, 4.6.1; FRED spec 6.1) [derived]. The
    handler's code (`text`) is taken as mapped."""
    if not st[base + F_EFER] & EFER_LMA:
        return _deliver(m, st, base, vector, chain)
    name = vector_name(vector)
    fred = (st[base + F_CR4] & CR4_FRED) != 0
    # rule: memory-regions
    if not fred and _reads_gate(st[base + F_IDT], vector) and \
            access_faults(m, st, base, DESC, READ, True, chain):
        chain[-1] = f"{name}: " + chain[-1]
        return PF
    fault = _deliver(m, st, base, vector, chain)
    if fault != NO_FAULT:
        return fault
    if fred:
        level = fred_stack_level(st[base + F_FRED_STKLVLS], vector)
        # rule: ring3-scheduling
        if st[base + F_FLAGS] & USER and vector != DF:
            level = 0   # from ring 3: level 0 (as in _deliver)
    else:
        idt = st[base + F_IDT]
        level = table_ist(idt, vector) if is_table(idt) else \
            IST_OF_VECTOR.get(vector, 0) if idt == IDT_FULL else 0
    # rule: memory-regions
    if access_faults(m, st, base, ESTACK if level else STACK, WRITE, True,
                     chain):
        chain[-1] = f"{name}: " + chain[-1]
        return PF
    return NO_FAULT


# rule: percpu-cache
def stale_rsp0_cache(st: list[int], base: int, chain: list[str]) -> None:
    """With FRED_RSP0 = 0 on an event from ring 3: say so if the per-CPU
    cache claims the MSR holds the task's stack (ops_percpu.py)."""
    if st[base + F_PERCPU] & PERCPU_FRED_RSP0 and _RSP0_NOTE not in chain:
        chain.append(_RSP0_NOTE)


_RSP0_NOTE: Final = ("(the per-CPU fred_rsp0 says FRED_RSP0 holds the task's"
                     " stack top, so an exit to user mode leaves it alone:"
                     " fe85ee391966)")


def _reads_gate(idt: int, vector: int) -> bool:
    """Whether delivery reads a gate from memory: the IDTR limit covers it
    (the reset and invalidated IDTs fault on the limit or hold no gate)."""
    if is_table(idt):
        return 16 * vector + 15 <= limit(idt)
    return idt == IDT_FULL or idt == IDT_EARLY or idt == IDT_BRINGUP


def _deliver(m: Machine, st: list[int], base: int, vector: int,
             chain: list[str]) -> int:
    # rule: cpu-mode
    if not st[base + F_EFER] & EFER_LMA:
        return _outside_long_mode(m, st, base, vector, chain)
    # rule: fred-delivery
    if st[base + F_CR4] & CR4_FRED:
        # CR4.FRED = 1: the IDT is ignored (FRED spec; BX interrupt()).
        if fred_entry_page(st[base + F_FRED_CONFIG]) == 0:
            return FRED_NO_ENTRY
        level = fred_stack_level(st[base + F_FRED_STKLVLS], vector)
        # rule: ring3-scheduling
        if st[base + F_FLAGS] & USER:
            # From ring 3 every event but #DF goes to stack level 0, and
            # the stack is always FRED_RSPn of the new level (FRED spec;
            # Bochs FRED_EventDelivery). A nested fault of that delivery is
            # taken the same way [assumed: the model does not track the
            # nested-event flag].
            if vector != DF:
                level = 0
            if st[base + F_FRED_RSP0 + level] == 0:
                chain.append(f"{vector_name(vector)} from ring 3: FRED stack"
                             f" level {level} and FRED_RSP{level} = 0: the"
                             " frame push faults -> #PF")
                if level == 0:
                    stale_rsp0_cache(st, base, chain)
                return PF
            return NO_FAULT
        if level > 0 and st[base + F_FRED_RSP0 + level] == 0:
            # Stack level above the current one loads FRED_RSPn (FRED spec;
            # BX FRED_EventDelivery); RSP 0 puts the frame at
            # 0xFFFFFFFFFFFFFFC0 - unmapped [derived].
            chain.append(f"{vector_name(vector)} selects FRED stack level {level}"
                         f" but FRED_RSP{level} = 0: the frame push faults")
            return PF
        return NO_FAULT
    idt = st[base + F_IDT]
    # rule: idt-tables
    if is_table(idt):
        return _through_table(st, base, idt, vector, chain)
    # rule: idt-states
    if idt == IDT_NONE:
        # Reset IDTR: gates come from page 0 - no valid 64-bit gate [derived,
        # BX init.cc + long_mode_int].
        chain.append(f"{vector_name(vector)} through the reset IDT (no LIDT yet):"
                     " no valid gate -> #GP")
        return GP
    # rule: idt-states
    if idt == IDT_NULL:
        # LIDT base 0 limit 0 (LX idt_invalidate): 16v+15 > limit (BX
        # long_mode_int).
        chain.append(f"{vector_name(vector)} through the invalidated IDT (limit 0)"
                     " -> #GP")
        return GP
    # rule: idt-states
    if idt == IDT_REAL:
        # real_mode_idt (LX arch/x86/kernel/reboot.c): the IVT's 4-byte
        # entries are no 64-bit gates [derived, BX long_mode_int].
        chain.append(f"{vector_name(vector)} through the real-mode IDT (base"
                     " 0, limit 0x3ff): no valid 64-bit gate -> #GP")
        return GP
    # rule: idt-states
    if idt == IDT_BRINGUP:
        # Only vector 29 is populated, and only in SEV-ES guests (LX head64.c
        # startup_64_load_idt); a zero gate is not a 64-bit gate -> #GP
        # (BX long_mode_int).
        if vector == VC and m.sev:
            return _gate_cs(st, base, vector, chain)
        chain.append(f"{vector_name(vector)} through the bringup IDT: no gate for"
                     f" vector {vector} -> #GP")
        return GP
    # rule: idt-states
    if idt == IDT_EARLY:
        # early_idt_handler_array covers vectors 0-31 (LX idt.c
        # idt_setup_early_handler).
        if vector < 32:
            return _gate_cs(st, base, vector, chain)
        chain.append(f"{vector_name(vector)} through the early IDT: no gate -> #GP")
        return GP
    # IDT_FULL: every vector has a present gate (LX idt.c: def_idts and
    # idt_setup_apic_and_irq_gates fill all 256).
    if _gate_cs(st, base, vector, chain) != NO_FAULT:
        return GP
    # rule: idt-states, ist-gates
    return _ist_stack(st, base, vector, IST_OF_VECTOR.get(vector, 0), chain)


def _gate_cs(st: list[int], base: int, vector: int,
             chain: list[str]) -> int:
    """The gate's code segment (__KERNEL_CS) is read from the GDT: beyond a
    limit of 0 it is #GP(selector) (SDM Vol. 3A 6.14.1, "Interrupt 13";
    BX long_mode_int fetch_raw_descriptor2)."""
    # rule: gdt
    if st[base + F_FLAGS] & GDT_NULL:
        chain.append(f"{vector_name(vector)}: the gate's code segment"
                     " (__KERNEL_CS) lies beyond the GDT limit 0 -> #GP")
        return GP
    return NO_FAULT


def _ist_stack(st: list[int], base: int, vector: int, ist: int,
               chain: list[str]) -> int:
    """NO_FAULT, or #PF if the gate's IST stack cannot take the frame."""
    # rule: ist-gates
    if ist:
        # IST != 0 always switches to that TSS slot (SDM Vol. 3A 6.14.5; BX
        # long_mode_int). Without LTR, TR is the reset one (base 0): the
        # slot is read from page 0, which Linux leaves unmapped; a slot
        # holding 0 puts the frame just below 2^64, unmapped too -> #PF
        # [derived, BX long_mode_int + SDM 6.14.4].
        tss = st[base + F_TSS]
        if not (tss & 1) or not (tss >> ist) & 1:
            chain.append(f"{vector_name(vector)} gate uses IST{ist}, but "
                         + ("no TSS is loaded (ltr)" if not tss & 1 else
                            f"IST{ist} is not set up (tss_setup_ist)")
                         + ": the frame push faults -> #PF")
            return PF
    # rule: ring3-scheduling
    elif st[base + F_FLAGS] & USER and not st[base + F_TSS] & 1:
        # From ring 3 a gate without IST switches to TSS.RSP0; with TR never
        # loaded the TSS is read at base 0, unmapped -> #PF [derived, as for
        # IST above; SDM Vol. 3A 6.14.4].
        chain.append(f"{vector_name(vector)} from ring 3 reads RSP0 from the"
                     " TSS, but no TSS is loaded (ltr): #PF")
        return PF
    return NO_FAULT


# rule: idt-tables
def _through_table(st: list[int], base: int, idt: int, vector: int,
                   chain: list[str]) -> int:
    """Delivery through an explicit table (`lidt gates ...`), in the order
    the CPU checks (SDM Vol. 3A 6.14.1, 6.12.1; BX long_mode_int)."""
    name = vector_name(vector)
    if 16 * vector + 15 > limit(idt):
        # The 16-byte gate must lie within the IDTR limit: #GP(vector*8+2)
        # (SDM Vol. 3A 6.14.1; BX long_mode_int).
        chain.append(f"{name}: gate {vector} lies beyond the IDT limit"
                     f" {limit(idt):#x} -> #GP")
        return GP
    if not has_gate(idt, vector):
        # A zero descriptor is not a 64-bit interrupt or trap gate: #GP
        # (SDM Vol. 3A 6.14.1 "Interrupt 13"; BX long_mode_int).
        chain.append(f"{name}: gate {vector} of the table"
                     f" ({describe(idt)}) is empty -> #GP")
        return GP
    if not_present(idt, vector):
        # A gate with P = 0: #NP(vector*8+2) (SDM Vol. 3A "Interrupt 11";
        # BX long_mode_int).
        chain.append(f"{name}: gate {vector} is not present (P = 0) -> #NP")
        return NP
    if _gate_cs(st, base, vector, chain) != NO_FAULT:
        return GP
    return _ist_stack(st, base, vector, table_ist(idt, vector), chain)


# rule: cpu-mode
def _outside_long_mode(m: Machine, st: list[int], base: int, vector: int,
                       chain: list[str]) -> int:
    """Delivery with EFER.LMA = 0, where CR4.FRED is ignored (BX
    interrupt()): real mode reads 4-byte IVT entries (SDM Vol. 3A 21.1.4),
    protected mode 8-byte gates (SDM Vol. 3A 6.11, 6.12.1). The model
    knows no IVT nor legacy IDT that Linux would deliver through: what it
    can say is which reads fault (#GP), and where a gate would be taken it
    stops, saying the target is not modelled."""
    name = vector_name(vector)
    idt = st[base + F_IDT]
    real = not st[base + F_CR0] & CR0_PE
    size = 4 if real else 8
    lim = limit(idt) if is_table(idt) else _LIMITS[idt]
    if size * vector + size - 1 > lim:
        chain.append(f"{name} in {'real' if real else 'protected'} mode:"
                     f" entry {vector} lies beyond the IDT limit {lim:#x}"
                     " -> #GP")
        return GP
    if real:
        chain.append(f"{name} in real mode: the IVT entry at the IDT base"
                     f" ({idt_name(idt)}) is taken; where it leads is not"
                     " modelled")
        return LANDS_UNKNOWN
    if idt == IDT_NONE or idt == IDT_REAL:
        # The firmware's IVT read as 8-byte descriptors: a segment's high
        # byte (0xF0, 0xC0) as the type byte is no gate [derived, BX
        # protected_mode_int].
        chain.append(f"{name} in protected mode through the IVT at 0"
                     f" ({idt_name(idt)}): no valid gate -> #GP")
        return GP
    # A 64-bit IDT read with 8-byte gates: slot v is half of 16-byte gate
    # v/2. An odd slot (offset 63:32, reserved) has type 0: #GP; an even
    # one is gate v/2's first half, type 0xE - a 32-bit interrupt gate
    # whose P bit is the gate's (SDM Vol. 3A 6.11 vs 6.14.1) [derived].
    half = vector >> 1
    present = has_gate(idt, half) if is_table(idt) else (
        idt == IDT_FULL or (idt == IDT_EARLY and half < 32)
        or (idt == IDT_BRINGUP and half == VC and m.sev))
    if vector & 1 or not present:
        chain.append(f"{name} in protected mode through a 64-bit IDT"
                     f" ({idt_name(idt)}): slot {vector} is no legacy gate"
                     " -> #GP")
        return GP
    if is_table(idt) and not_present(idt, half):
        chain.append(f"{name} in protected mode: slot {vector} is gate"
                     f" {half}'s first half, not present -> #NP")
        return NP
    if _gate_cs(st, base, vector, chain) != NO_FAULT:
        return GP   # the gate's selector from the GDT (BX protected_mode_int)
    chain.append(f"{name} in protected mode through a 64-bit IDT"
                 f" ({idt_name(idt)}): slot {vector} is gate {half}'s first"
                 " half, read as a 32-bit interrupt gate; where it leads is"
                 " not modelled")
    return LANDS_UNKNOWN


# IDTR limits of the named IDTs (LX idt.c IDT_TABLE_SIZE, head64.c
# bringup_idt_table[NUM_EXCEPTION_VECTORS], the reset IDTR, idt_invalidate,
# reboot.c real_mode_idt).
_LIMITS: Final[tuple[int, ...]] = (0xFFFF, 0x1FF, 0xFFF, 0xFFF, 0, 0x3FF)


def stub_delivery(st: list[int], base: int) -> bool:
    """Events on this CPU reach an explicit table's stub handlers, not
    Linux's: what a Linux handler would do afterwards (a fixup's report,
    report_bug()) does not happen."""
    return _via(st, base) == VIA_STUB


def _via(st: list[int], base: int) -> int:
    """Whose handlers run: VIA_FRED, an IDT_* kind, or VIA_STUB."""
    if st[base + F_CR4] & CR4_FRED and st[base + F_EFER] & EFER_LMA:
        return VIA_FRED
    idt = st[base + F_IDT]
    # rule: idt-tables
    if is_table(idt):
        kind = table_handler(idt)
        return VIA_STUB if kind == STUB else kind
    return idt


def raise_event(m: Machine, st: list[int], base: int, vector: int,
                interrupt: bool, reason: int, chain: list[str]) -> int:
    """Raise `vector` on the CPU at `base` and return the outcome.

    `interrupt` marks an NMI or external interrupt: never the first exception
    of a double-fault pair (SDM Vol. 3A "Interrupt 8"; BX event.cc).
    """
    if vector == VE and m.platform == TDX:
        flags = st[base + F_FLAGS]
        # rule: vc-ve-sources
        if flags & VE_PENDING:
            # A #VE before the previous one's info is read is injected as
            # #DF (TDX module tdx_inject_ve; LX Documentation/arch/x86/tdx.rst).
            chain.append("#VE while the previous #VE's info is unread:"
                         " the TDX module injects #DF")
            return _double_fault(m, st, base, chain)
        st[base + F_FLAGS] = flags | VE_PENDING
    # rule: kernel-images
    if m.images and stale_handler(m, st, base, _via(st, base) == VIA_FRED,
                                  vector_name(vector), chain):
        return TRIPLE_FAULT
    first = BENIGN if interrupt else exception_class(vector, m.cet_enumerated)
    v = vector
    from_delivery = False
    for _ in range(8):
        fault = try_deliver(m, st, base, v, chain)
        if fault == NO_FAULT:
            via = _via(st, base)
            if via == VIA_STUB:
                return stub_handler(m, st, base, v, chain)
            outcome, follow = handle(m, st, base, v, via, reason,
                                     from_delivery, chain)
            if follow < 0:
                return outcome
            # The handler itself faulted (e.g. #UD in paranoid_entry): a new
            # event, not one during delivery (BX exception.cc) [derived].
            # rule: handler-fault
            v = follow
            first = exception_class(v, m.cet_enumerated)
            from_delivery = False
            continue
        # rule: fred-delivery
        if fault == FRED_NO_ENTRY:
            _fred_no_entry(v, chain)
            return TRIPLE_FAULT
        # rule: cpu-mode
        if fault == LANDS_UNKNOWN:
            return UNHANDLED
        # rule: exception-classes
        second = exception_class(fault, m.cet_enumerated)
        # rule: double-fault
        if double_fault_pair(first, second):
            chain.append(f"{vector_name(fault)} while delivering {vector_name(v)}"
                         " -> #DF (SDM table 6-5)")
            return _double_fault(m, st, base, chain)
        # rule: double-fault
        chain.append(f"{vector_name(fault)} while delivering"
                     f" {vector_name(v)} is handled serially (SDM table 6-5)")
        v = fault
        first = second
        from_delivery = True
    chain.append("event loop did not settle")  # unreachable: classes rise
    return TRIPLE_FAULT


# rule: double-fault
def _double_fault(m: Machine, st: list[int], base: int,
                  chain: list[str]) -> int:
    fault = try_deliver(m, st, base, DF, chain)
    # rule: fred-delivery
    if fault == FRED_NO_ENTRY:
        _fred_no_entry(DF, chain)
        return TRIPLE_FAULT
    # rule: cpu-mode
    if fault == LANDS_UNKNOWN:
        return UNHANDLED
    if fault != NO_FAULT:
        # Any fault delivering #DF: shutdown (SDM "Interrupt 8"; BX, QEMU,
        # KVM).
        chain.append(f"{vector_name(fault)} while delivering #DF -> SHUTDOWN"
                     " (triple fault)")
        return TRIPLE_FAULT
    via = _via(st, base)
    if via == VIA_STUB:
        return stub_handler(m, st, base, DF, chain)
    outcome, follow = handle(m, st, base, DF, via, R_NONE, True, chain)
    # rule: handler-fault
    if follow >= 0:
        # A fault in the #DF handler's entry (#UD in paranoid_entry) is a new
        # event once delivery is done (BX exception.cc) [derived].
        return raise_event(m, st, base, follow, False, R_NONE, chain)
    return outcome


# rule: fred-delivery
def _fred_no_entry(vector: int, chain: list[str]) -> None:
    # FRED_CONFIG = 0: ring-0 entry RIP 0x100 (FRED spec; BX HEAD fred.cc);
    # the fetch #PF-loops until the stack runs out, then #DF through the same
    # setup -> shutdown [derived, BX fred.cc; SEMANTICS section 3].
    chain.append(f"{vector_name(vector)} delivered through FRED (CR4.FRED = 1)"
                 " with FRED_CONFIG = 0: no entry point")
    chain.append("entry RIP 0x100 faults, #PF -> #DF through the same FRED"
                 " setup -> SHUTDOWN (triple fault)")


