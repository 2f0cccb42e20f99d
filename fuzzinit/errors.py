"""The user-mistake exceptions: one family, each rendered as one line."""

import errno


class FuzzinitError(Exception):
    """Base of every error fuzzinit reports to the user (exit status 2)."""


class ScenarioError(FuzzinitError):
    """A scenario file that cannot be loaded: where, what, expected, fix."""

    def __init__(self, path: str, where: str, problem: str,
                 expected: str = "", hint: str = "",
                 line: int | None = None) -> None:
        self.path = path
        self.where = where
        self.problem = problem
        self.expected = expected
        self.hint = hint
        self.line = line
        super().__init__(self.render())

    def render(self) -> str:
        place = self.path if self.line is None else f"{self.path}:{self.line}"
        text = f"{place}: {self.where}: {self.problem}" if self.where else \
            f"{place}: {self.problem}"
        if self.expected:
            text += f"; expected {self.expected}"
        if self.hint:
            text += f"; fix: {self.hint}"
        return text


class TraceError(FuzzinitError):
    """A trace file that cannot be replayed against its scenario."""


def describe_os_error(exc: OSError, action: str = "cannot write") -> str:
    """One line for a failed read or write: the path, the errno's name and
    its text, e.g. "cannot write reports/x.md: ENOSPC (No space left on
    device)"."""
    code = errno.errorcode.get(exc.errno or 0, "")
    what = f"{code} ({exc.strerror})" if code else str(exc.strerror or exc)
    # No file name: the error came from writing the command's output.
    where = f" {exc.filename}" if exc.filename is not None else \
        " standard output"
    return f"{action}{where}: {what}"
