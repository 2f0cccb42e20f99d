"""LASS: supervisor accesses to the lower (user) half of the address
space, and EFLAGS.AC (STAC/CLAC), which lets data accesses through."""

from typing import Final

from .arch import CR4_BITS, EFER_LMA, GP, SS, UD
from .delivery import raise_event
from .grammar import OpSyntaxError
from .machine import (
    AC_SET,
    CS32,
    F_CR4,
    F_EFER,
    F_FLAGS,
    FEATURE_SMAP,
    R_NONE,
    Machine,
)
from .op import Example, Op
from .outcome import OK

STAC: Final = 46
CLAC: Final = 47
ACCESS_USER: Final = 48
CR4_LASS: Final = 1 << CR4_BITS["lass"]
CR4_SMAP: Final = 1 << CR4_BITS["smap"]
ACCESSES: Final[dict[str, int]] = {"data": 0, "fetch": 1, "stack": 2}


class AcFlag(Op):
    """`stac` / `clac`: EFLAGS.AC; both are #UD where SMAP is not
    enumerated (SDM Vol. 2 STAC, CLAC)."""

    def __init__(self, kind: int, name: str) -> None:
        set_ = kind == STAC
        super().__init__(
            kind, name, name,
            ("STAC: EFLAGS.AC = 1" if set_ else "CLAC: EFLAGS.AC = 0")
            + " (#UD without SMAP); with AC set, LASS lets supervisor data"
            " accesses to the lower half through (`lass_stac()`)",
            "SDM Vol. 2 STAC/CLAC; LX arch/x86/include/asm/smap.h"
            " lass_stac/lass_clac",
            samples=(name,),  # may raise #UD: the default footprint
            examples=(
                Example(("cr4_set lass", "stac", "access_user data", "clac"),
                        "ok", features=("lass", "smap")),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # rule: lass
        if not m.features & FEATURE_SMAP:
            chain.append(f"{self.name.upper()} without SMAP -> #UD")
            return raise_event(m, st, base, UD, False, R_NONE, chain)
        flags = st[base + F_FLAGS]
        # rule: lass
        st[base + F_FLAGS] = flags | AC_SET if self.kind == STAC else \
            flags & ~AC_SET
        return OK


class AccessUser(Op):
    def __init__(self) -> None:
        super().__init__(
            ACCESS_USER, "access_user", "access_user data|fetch|stack",
            "a CPL-0 data access, instruction fetch or stack access at a"
            " lower-half (user-half) linear address, e.g. text_poke()'s"
            " poking mm, a 1:1 firmware mapping or a firmware stack: in"
            " 64-bit mode with CR4.LASS = 1 a fetch is #GP, a data access"
            " too if CR4.SMAP = 1 and EFLAGS.AC = 0, a stack access the same"
            " but #SS. Paging of the address is not modelled",
            "Intel ISE ch. LASS; Bochs cpu/access.cc IsCanonicalAccess,"
            " int_number (SS-based: #SS); LX arch/x86/kernel/alternative.c"
            " text_poke_memcpy",
            samples=("access_user data", "access_user fetch",
                     "access_user stack"),
            examples=(
                Example(("lidt full", "cr4_set smap", "cr4_set lass",
                         "access_user data"),
                        "unhandled", (
                    "cpu0: access_user data",
                    "supervisor data access to the lower half with"
                    " CR4.LASS = 1 and EFLAGS.AC = 0 -> #GP",
                    "#GP in kernel code with no fixup: die()"),
                    features=("lass", "smap")),
                Example(("lidt full", "cr4_set lass", "stac",
                         "access_user fetch"), "unhandled", (
                    "cpu0: access_user fetch",
                    "supervisor instruction fetch from the lower half with"
                    " CR4.LASS = 1 -> #GP",
                    "#GP in kernel code with no fixup: die()"),
                    features=("lass", "smap")),
                Example(("lidt full", "cr4_set smap", "cr4_set lass",
                         "access_user stack"), "unhandled", (
                    "cpu0: access_user stack",
                    "supervisor stack access to the lower half with"
                    " CR4.LASS = 1 and EFLAGS.AC = 0 -> #SS",
                    "#SS in kernel code with no fixup: die()"),
                    features=("lass", "smap")),
                Example(("lidt full", "cr4_set smap", "cr4_set lass",
                         "stac", "access_user stack"), "ok",
                        features=("lass", "smap")),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1 or args[0].lower() not in ACCESSES:
            raise OpSyntaxError("access_user needs the kind of access",
                                "access_user data|fetch|stack",
                                "data for a load or store, fetch for code")
        return ACCESSES[args[0].lower()], 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        cr4 = st[base + F_CR4]
        flags = st[base + F_FLAGS]
        if not cr4 & CR4_LASS or flags & CS32 or \
                not st[base + F_EFER] & EFER_LMA:
            # LASS is checked in 64-bit mode only (BX IsCanonicalAccess,
            # long64_mode()).
            return OK
        # rule: lass
        if a == 1:
            # Instruction fetches from the lower half: #GP whatever AC
            # says (Intel ISE, LASS; BX IsCanonicalAccess).
            chain.append("supervisor instruction fetch from the lower half"
                         " with CR4.LASS = 1 -> #GP")
            return raise_event(m, st, base, GP, False, R_NONE, chain)
        if not cr4 & CR4_SMAP or flags & AC_SET:
            # Data accesses: a violation only with CR4.SMAP = 1 and
            # EFLAGS.AC = 0 (Intel ISE, LASS; BX IsCanonicalAccess).
            return OK
        # rule: lass
        if a == 2:
            # A violation through SS is #SS(0) (Bochs access.cc int_number;
            # SDM Vol. 3A "Interrupt 12": stack references).
            chain.append("supervisor stack access to the lower half with"
                         " CR4.LASS = 1 and EFLAGS.AC = 0 -> #SS")
            return raise_event(m, st, base, SS, False, R_NONE, chain)
        # rule: lass
        chain.append("supervisor data access to the lower half with"
                     " CR4.LASS = 1 and EFLAGS.AC = 0 -> #GP")
        return raise_event(m, st, base, GP, False, R_NONE, chain)


def lass_ops() -> list[Op]:
    return [AcFlag(STAC, "stac"), AcFlag(CLAC, "clac"), AccessUser()]
