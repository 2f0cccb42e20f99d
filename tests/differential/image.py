"""Build the boot image for one case: nasm source, assembled and cached.

The image is a 64 KiB firmware for `qemu-system-x86_64 -bios`: the CPU
starts at the reset vector (physical 0xFFFFFFF0, the last 16 bytes of the
file) in real mode with every register in its reset state (SDM Vol. 3A
9.1.1 Table 9-1). It copies itself from the ROM's low alias at 0xF0000 to
RAM at 0x10000 (the GDT and the TSS must be writable: LTR sets the busy bit,
SDM Vol. 3A 7.2.4), enters protected mode and then IA-32e mode, loads the
case's IDT, optionally its TSS, runs the trigger, and reports on port 0xE9.

Memory (all addresses physical = linear, identity map):
  0x00000..0x00FFF  NOT present, so a TSS or IDT read through base 0 faults
                    with #PF (TR's reset base is 0, SDM 9.1.1 Table 9-1)
  0x01000..0x1FFFFF present (4 KiB pages), 2 MiB..32 MiB present (2 MiB
                    pages); the image (code, GDT, TSS, IDT, page tables) at
                    0x10000, RSP at 0x80000, IST stack n tops at 0x90000+n*0x1000
  0xFEE00000        one 2 MiB page (uncached) for the local APIC (self-NMI)
  everything else, including the whole high canonical half, NOT present:
                    a push with RSP = 0 (an IST slot holding 0) writes
                    0xFFFFFFFFFFFFFFF8 and faults #PF (SDM 6.14.5)
TR without LTR: the image never touches TR, so it keeps its reset state:
selector 0, base 0, limit 0xFFFF, present, type 11 (busy 32-bit TSS) (SDM
Vol. 3A 9.1.1 Table 9-1; QEMU target/i386/cpu.c x86_cpu_reset sets
tr.limit = 0xffff, tr.flags = P | type 11). An IST lookup then reads linear
0x24 + 8 * (n - 1), inside the not-present page 0: #PF (SDM 6.14.5).
Report protocol on the debugcon port 0xE9: "H" and the vector byte when a
handler runs, "N" when the code after the trigger runs; then the image
writes 0 to isa-debug-exit (port 0xF4), so QEMU exits with status 1.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from .cases import IMAGE_CR4, Case, check_case, parse_trigger

LOAD = 0x10000  # where the image runs (RAM)
STACK = 0x80000
IST_STACKS = 0x90000  # slot n's stack top is IST_STACKS + n * 0x1000
NONCANONICAL = 0x8000_0000_0000_0000  # bit 63 set, bits 62:47 clear
NOT_PRESENT = 0x4000_0000  # 1 GiB: canonical, outside the identity map
APIC = 0xFEE0_0000

_CODE_SEL = 0x18  # 64-bit code segment
_TSS_SEL = 0x20


def trigger_asm(trigger: str) -> str:
    """The instructions for one trigger string (nasm, 64-bit)."""
    kind, args = parse_trigger(trigger)
    if kind == "int3":
        return "int3"
    if kind == "div0":
        return "xor ecx, ecx\n    xor edx, edx\n    mov eax, 1\n    div ecx"
    if kind == "ud2":
        return "ud2"
    if kind == "int":
        # INT imm8 (CD ib) even for 3; nasm emits CD 03 for "int 3".
        return f"int {args[0]}"
    if kind == "gp":
        # A non-canonical address through RAX: #GP(0) (SDM 6.15 Interrupt 13;
        # through RSP/RBP it would be #SS instead).
        return f"mov rax, {NONCANONICAL:#x}\n    mov rax, [rax]"
    if kind == "pf":
        return f"mov rax, {NOT_PRESENT:#x}\n    mov rax, [rax]"
    if kind == "mov_cr4":
        return f"mov rax, {args[0]:#x}\n    mov cr4, rax"
    if kind == "rdmsr":
        return f"mov ecx, {args[0]:#x}\n    rdmsr"
    if kind == "wrmsr":
        value = args[1]
        return (f"mov ecx, {args[0]:#x}\n    mov eax, {value & 0xFFFFFFFF:#x}\n"
                f"    mov edx, {value >> 32:#x}\n    wrmsr")
    # nmi: enable the local APIC (SVR bit 8), then ICR high = APIC ID 0,
    # ICR low = delivery mode NMI (100b << 8), physical, no shorthand (SDM
    # Vol. 3A 11.6.1: the "self" shorthand allows only fixed delivery).
    return (f"mov rbx, {APIC:#x}\n    mov dword [rbx + 0xf0], 0x1ff\n"
            "    mov dword [rbx + 0x310], 0\n    mov dword [rbx + 0x300], 0x400")


def _idt_entries(case: Case) -> str:
    lines = []
    by_vector = {g.vector: g for g in case.gates}
    for vector in range(256):
        gate = by_vector.get(vector)
        if gate is None:
            lines.append("    dq 0, 0")
            continue
        # 64-bit interrupt gate, DPL 0: type 0xE, P in bit 7 (SDM 6.14.1
        # Figure 6-8); P=0 keeps the valid type, so delivery raises #NP.
        access = 0x8E if gate.present else 0x0E
        lines.append(f"    GATE stub_{vector}, {gate.ist}, {access:#x}")
    return "\n".join(lines)


def source(case: Case) -> str:
    """The nasm source of the image for one case."""
    check_case(case)
    return fill(case, trigger_asm(case.trigger))


def fill(case: Case, trigger: str, cr4: int = IMAGE_CR4, cr0_or: int = 0,
         efer_or: int = 0, pdpt_1: str = "0", tables: str = "") -> str:
    """The template with a case's IDT and TSS and any trigger code: the
    paging cases (paging.py) add CR0/EFER bits, a PDPT entry for linear
    1 GiB and more page-table pages after pt_low."""
    tss_ist = "\n".join(
        f"    dq {IST_STACKS + n * 0x1000 if n in case.ist_slots else 0:#x}"
        f"  ; IST{n}" for n in range(1, 8))
    stubs = "\n".join(f"stub_{v}: mov al, {v}\n    jmp report" for v in range(256))
    ltr = (f"mov ax, {_TSS_SEL:#x}\n    ltr ax" if case.ltr
           else "; no LTR: TR keeps its reset state")
    return _TEMPLATE.format(
        load=LOAD, stack=STACK, cr4=cr4, code=_CODE_SEL, limit=case.limit,
        ltr=ltr, trigger=trigger, tss_ist=tss_ist,
        idt=_idt_entries(case), stubs=stubs, apic=APIC,
        cr0_or=0x80000001 | cr0_or, efer_or=0x100 | efer_or, pdpt_1=pdpt_1,
        tables=tables)


def cache_dir() -> Path:
    """Per-user cache of assembled images, keyed by the source's hash."""
    path = Path(tempfile.gettempdir()) / f"fuzzinit-qemu-images-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def build(case: Case) -> Path:
    """Assemble the image for a case (cached by content hash); its path."""
    return assemble(source(case))


def assemble(text: str) -> Path:
    """Assemble nasm source into a cached image (keyed by its hash)."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    out = cache_dir() / f"{digest}.bin"
    if out.exists():
        return out
    src = out.with_suffix(f".{os.getpid()}.asm")
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    src.write_text(text)
    try:
        subprocess.run(["nasm", "-f", "bin", "-o", str(tmp), str(src)],
                       check=True, capture_output=True, text=True)
        os.replace(tmp, out)  # atomic: a parallel builder sees all or nothing
    finally:
        src.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return out


_TEMPLATE = """\
; fuzzinit differential case image; see tests/differential/image.py
%macro GATE 3  ; handler, ist, access byte
    dw (%1 - $$ + {load:#x}) & 0xffff
    dw {code:#x}
    db %2, %3
    dw ((%1 - $$ + {load:#x}) >> 16) & 0xffff
    dd 0, 0
%endmacro

    org {load:#x}
    bits 64
long_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rsp, {stack:#x}
    lidt [idtr]
    {ltr}
    ; the trigger
    {trigger}
    ; it raised nothing (or the NMI is still pending: give it time)
    mov ecx, 10000
.wait:
    pause
    dec ecx
    jnz .wait
    mov al, 'N'
    out 0xe9, al
    jmp exit
report:  ; al = vector
    mov ah, al
    mov al, 'H'
    out 0xe9, al
    mov al, ah
    out 0xe9, al
exit:
    xor eax, eax
    out 0xf4, al  ; isa-debug-exit: QEMU exits with status (0 << 1) | 1
.hlt:
    hlt
    jmp .hlt

{stubs}

    bits 32
prot_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, {cr4:#x}          ; CR4.PAE (SDM 9.8.5)
    mov cr4, eax
    mov eax, pml4
    mov cr3, eax
    mov ecx, 0xc0000080        ; IA32_EFER.LME
    rdmsr
    or eax, {efer_or:#x}
    wrmsr
    mov eax, cr0
    or eax, {cr0_or:#x}         ; CR0.PG | CR0.PE: IA-32e mode active
    mov cr0, eax
    jmp {code:#x}:long_entry

    align 16
gdt:
    dq 0
    dq 0x00cf9a000000ffff      ; 0x08 32-bit code
    dq 0x00cf92000000ffff      ; 0x10 data
    dq 0x00af9a000000ffff      ; 0x18 64-bit code (L=1)
    ; 0x20 64-bit available TSS (type 9), limit 0x67 (SDM 8.2.3 Figure 8-4)
    dw 0x67
    dw (tss - $$ + {load:#x}) & 0xffff
    db ((tss - $$ + {load:#x}) >> 16) & 0xff
    db 0x89, 0
    db ((tss - $$ + {load:#x}) >> 24) & 0xff
    dd 0, 0
gdt_end:
gdtr:
    dw gdt_end - gdt - 1
    dd gdt
idtr:
    dw {limit:#x}
    dq idt

    align 16
tss:                           ; 64-bit TSS (SDM 8.7 Figure 8-11)
    dd 0
    dq {stack:#x}, 0, 0        ; RSP0..RSP2
    dq 0
{tss_ist}
    dq 0
    dw 0, 0x68                 ; I/O map base past the limit: no bitmap

    align 4096
idt:
{idt}

    align 4096
pml4:
    dq pdpt + 3
    times 511 dq 0
pdpt:
    dq pd_low + 3
    dq {pdpt_1}
    dq 0
    dq pd_apic + 3
    times 508 dq 0
pd_low:
    dq pt_low + 3
%assign i 1
%rep 15
    dq (i << 21) | 0x83        ; 2 MiB pages, present, writable
%assign i i+1
%endrep
    times 496 dq 0
pd_apic:
    times 503 dq 0
    dq {apic:#x} | 0x9b        ; 2 MiB, present, writable, PWT, PCD
    times 8 dq 0
pt_low:
    dq 0                       ; linear page 0 NOT present
%assign i 1
%rep 511
    dq (i << 12) | 3
%assign i i+1
%endrep
{tables}

    ; real-mode start, reached from the reset vector
    times 0xff00 - ($ - $$) db 0
    bits 16
real_entry:
    cli
    cld
    mov ax, 0xf000             ; the ROM's low alias (last 64 KiB at 0xF0000)
    mov ds, ax
    mov ax, {load:#x} >> 4
    mov es, ax
    xor si, si
    xor di, di
    mov cx, 0x8000
    rep movsw
    jmp ({load:#x} >> 4):(in_ram - $$)
in_ram:
    mov ax, cs
    mov ds, ax
    o32 lgdt [gdtr - $$]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    jmp dword 0x08:prot_entry

    times 0xfff0 - ($ - $$) db 0
reset_vector:                  ; physical 0xFFFFFFF0, CS.base 0xFFFF0000
    jmp real_entry
    times 0x10000 - ($ - $$) db 0
"""
