"""The model's rules, one per row of the README's "Model rules and their
sources" list, each with a stable id. The model's code names the id in a
`# rule: ID` comment where the rule is decided (markers.py); the README
writes the id at the start of the row. tests/test_reach.py keeps the
three in step."""

from __future__ import annotations

from typing import NamedTuple


class Rule(NamedTuple):
    number: int   # its row in the README list
    id: str       # stable: reports and JSON name rules by it
    title: str


RULES: tuple[Rule, ...] = (
    Rule(1, "exception-classes", "exception classes (benign, contributory,"
         " page fault)"),
    Rule(2, "double-fault", "#DF pairs and shutdown"),
    Rule(3, "handler-fault", "a fault in a handler is a new event"),
    Rule(4, "idt-states", "named IDT states and missing gates"),
    Rule(5, "ist-gates", "runtime IST gates need the TSS and the slot"),
    Rule(6, "fred-delivery", "FRED delivery, FRED_CONFIG and stack levels"),
    Rule(7, "cr-gp", "#GP on CR0/CR4 writes"),
    Rule(8, "cr-pinning", "CR pinning"),
    Rule(9, "linux-handlers", "Linux exception handlers and paranoid_entry"),
    Rule(10, "vc-handlers", "#VC handlers and the GHCBs"),
    Rule(11, "vc-ve-sources", "#VC and #VE sources"),
    Rule(12, "console", "console output and its port I/O"),
    Rule(13, "trampoline-cr4", "APs' CR4 through the trampoline"),
    Rule(14, "intercepted-msrs", "intercepted MSRs on SEV-ES/SNP"),
    Rule(15, "nmi-blocking", "NMI blocking and pending NMIs"),
    Rule(16, "outcomes", "outcomes: never_online and invalid orderings"),
    Rule(17, "bug-sites", "WARN, BUG and kCFI sites (ud2)"),
    Rule(18, "msrs", "MSR accesses: absent and read-only MSRs"),
    Rule(19, "machine-checks", "machine checks"),
    Rule(20, "idt-tables", "explicit IDT tables, gate by gate"),
    Rule(21, "exceptions-on-purpose", "int3, div0 and raised exceptions"),
    Rule(22, "cpu-mode", "CPU mode: code segments and long mode"),
    Rule(23, "gdt", "GDTs and segment loads"),
    Rule(24, "cet-ibt", "CET indirect branch tracking"),
    Rule(25, "lass", "linear address space separation"),
    Rule(26, "feature-flags", "kernel feature flags and alternatives"),
    Rule(27, "memory-regions", "memory regions and page tables"),
    Rule(28, "ring3-scheduling", "ring 3 and handlers that schedule"),
    Rule(29, "apic-mode", "local APIC mode and the x2APIC MSRs"),
    Rule(30, "offline-init", "CPU offline, INIT and a second start"),
    Rule(31, "kernel-images", "kernel images: kexec, resume, gone code"),
    Rule(32, "percpu-cache", "per-CPU memory caching a register"),
    Rule(33, "stop-cpus", "stopping other CPUs"),
    Rule(34, "lazy-msr", "a lazily restored MSR met by an event"),
)

BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
