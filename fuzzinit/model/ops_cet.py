"""CET indirect branch tracking: an indirect CALL or JMP whose target does
or does not begin with ENDBR64, against CR4.CET and IA32_S_CET.ENDBR_EN
(`wrmsr S_CET ...`: `setup_cet()`, `ibt_save()`, `ibt_restore()`)."""

from typing import Final

from .arch import CP, CR4_CET
from .delivery import raise_event
from .grammar import OpSyntaxError
from .machine import F_CR4, F_FLAGS, IBT_ON, R_IBT_SELFTEST, R_NONE, Machine
from .op import Example, Op
from .outcome import OK

CALL_INDIRECT: Final = 45
TARGETS: Final[dict[str, int]] = {"endbr": 0, "noendbr": 1, "selftest": 2}


class CallIndirect(Op):
    def __init__(self) -> None:
        super().__init__(
            CALL_INDIRECT, "call_indirect",
            "call_indirect endbr|noendbr|selftest",
            "an indirect CALL or JMP at CPL 0 to a target that begins with"
            " ENDBR64 or not (firmware, `efi_call()`, a NOENDBR label): with"
            " CR4.CET = 1 and S_CET.ENDBR_EN = 1 a target without it raises"
            " #CP(ENDBRANCH), which Linux's handler turns into BUG();"
            " `selftest` is `ibt_selftest()`'s jump to ibt_selftest_noendbr,"
            " whose #CP the handler expects and returns from",
            "SDM Vol. 1 18.3, Vol. 3A 6.15 Interrupt 21; LX"
            " arch/x86/kernel/cet.c exc_control_protection",
            samples=("call_indirect noendbr", "call_indirect endbr",
                     "call_indirect selftest"),
            examples=(
                Example(("wrmsr S_CET 4", "cr4_set cet",
                         "call_indirect endbr"), "ok", features=("cet",)),
                Example(("lidt full", "wrmsr S_CET 4", "cr4_set cet",
                         "call_indirect noendbr"), "unhandled", (
                    "cpu0: call_indirect noendbr",
                    "indirect branch to a target without ENDBR64 with"
                    " IBT on -> #CP(ENDBRANCH)",
                    "#CP (missing ENDBR): exc_control_protection() BUG()s"
                    " (ibt=warn, which continues, is not modelled)"),
                    features=("cet",)),
                Example(("lidt full", "wrmsr S_CET 4", "wrmsr S_CET 0",
                         "cr4_set cet", "call_indirect noendbr"), "ok",
                        features=("cet",)),
                Example(("lidt full", "wrmsr S_CET 4", "cr4_set cet",
                         "call_indirect selftest"), "ok", features=("cet",)),
                Example(("wrmsr FRED_CONFIG entry", "wrmsr FRED_RSP0 stack",
                         "cr4_set fred", "wrmsr S_CET 4", "cr4_set cet",
                         "call_indirect selftest"), "hang", (
                    "cpu0: call_indirect selftest",
                    "indirect branch to a target without ENDBR64 with"
                    " IBT on -> #CP(ENDBRANCH)",
                    "do_kernel_cp_fault() returns from the selftest's #CP,"
                    " but ERETS restores WFE from the FRED frame: #CP again"
                    " at ibt_selftest_noendbr, forever"),
                    features=("cet", "fred"),
                    kernel=(("ibt_clear_fred_wfe", "false"),)),
                Example(("wrmsr FRED_CONFIG entry", "wrmsr FRED_RSP0 stack",
                         "cr4_set fred", "wrmsr S_CET 4", "cr4_set cet",
                         "call_indirect selftest"), "ok",
                        features=("cet", "fred")),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1 or args[0].lower() not in TARGETS:
            raise OpSyntaxError("call_indirect needs the kind of target",
                                "call_indirect endbr|noendbr|selftest",
                                "noendbr for firmware or a NOENDBR label")
        return TARGETS[args[0].lower()], 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if not a or not st[base + F_CR4] & CR4_CET or \
                not st[base + F_FLAGS] & IBT_ON:
            return OK
        # The tracker waits for ENDBR64 at the target; anything else is
        # #CP with error code 3, ENDBRANCH (SDM Vol. 1 18.3.1).
        # rule: cet-ibt
        chain.append("indirect branch to a target without ENDBR64 with IBT"
                     " on -> #CP(ENDBRANCH)")
        return raise_event(m, st, base, CP, False,
                           R_IBT_SELFTEST if a == 2 else R_NONE, chain)


def cet_ops() -> list[Op]:
    return [CallIndirect()]
