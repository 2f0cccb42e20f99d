"""Load-time checks of ring 3 and scheduling handlers in CPU programs
(fuzzinit/model/ops_user.py): between `exit_to_user` and `syscall` a
program is user code, and each `preempt_event` is closed by one
`event_return`. A program is sequential, so both are checked here, once."""

from __future__ import annotations

from fuzzinit.model.ops_user import USER_OPS
from fuzzinit.model.vocabulary import OPS
from fuzzinit.scenario.source import Ctx


def check_user_windows(programs: list[list[int]], kinds: list[int],
                       texts: list[str], ctx: Ctx) -> None:
    for cpu, program in enumerate(programs):
        user = False
        frame = False
        where = f"cpu[{cpu}].program"
        for op in program:
            name = OPS[kinds[op]].name
            text = texts[op]
            if user and name not in USER_OPS:
                raise ctx.error(where, f"{text!r} runs in user mode (after"
                                " 'exit_to_user'), where kernel code does"
                                " not", "one of " + ", ".join(
                                    sorted(USER_OPS)),
                                "put 'syscall' before it", needle=text)
            if name == "exit_to_user":
                user = True
            elif name == "syscall":
                if not user:
                    raise ctx.error(where, f"{text!r} in kernel mode",
                                    "'exit_to_user' before it",
                                    "SYSCALL enters the kernel from user"
                                    " mode: return to user first",
                                    needle=text)
                user = False
            elif name == "preempt_event":
                if frame:
                    raise ctx.error(where, f"{text!r} while a frame is"
                                    " open", "'event_return' before it",
                                    "one interrupt may be scheduled away at"
                                    " a time", needle=text)
                frame = True
            elif name == "event_return":
                if not frame:
                    raise ctx.error(where, f"{text!r} with no frame to"
                                    " return from", "'preempt_event' before"
                                    " it", "remove it or add the interrupt",
                                    needle=text)
                frame = False
