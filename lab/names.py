"""Untrusted text: names that become file and folder names, and messages that must
stay on one line.

Every name the lab turns into a path (the scenario's, each strategy's) goes
through `check_name` when the scenario is validated, so a name the filesystem
would refuse (too long, a NUL byte, a separator) or mangle (a newline inside a
folder name) is refused before anything runs, not after a whole simulation.
"""

from __future__ import annotations

import reprlib
import unicodedata

MAX_NAME_BYTES = 100
"""A run folder is `<strategy>.<backend>.s<seed>` and is written under a temporary
name first; 100 bytes of name leaves room within the 255 bytes most filesystems allow."""
SEPARATORS = frozenset("/\\")
MAX_LINE = 400
"""Longest error line printed; the rest of a runaway value is cut."""


def _unprintable(char: str) -> bool:
    """Control, format, surrogate, private-use and unassigned characters, and line or
    paragraph separators: anything that would break a line or hide in a file name."""
    return unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp")


def check_name(name: str) -> str:
    """`name` if it is safe as a single file or folder name everywhere the lab writes it;
    otherwise ValueError saying what is wrong and what a good name looks like."""
    fix = "use letters, digits, '-', '_' or '.'"
    if not name or not name.strip():
        raise ValueError(f"a name cannot be empty; {fix}")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise ValueError(
            f"a name is at most {MAX_NAME_BYTES} bytes (it names files), got {size} bytes"
        )
    bad = next((c for c in name if _unprintable(c)), None)
    if bad is not None:
        raise ValueError(f"a name cannot contain the control character {bad!r}; {fix}")
    sep = next((c for c in name if c in SEPARATORS), None)
    if sep is not None:
        raise ValueError(f"a name cannot contain {sep!r} (it names folders); {fix}")
    if name.startswith("."):
        raise ValueError(f"a name cannot start with '.' (hidden and temporary files do); {fix}")
    if name != name.strip():
        raise ValueError(f"a name cannot start or end with a space; {fix}")
    return name


_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4
_SHORT.maxlevel = 2


def short_repr(value: object) -> str:
    """repr() cut to a readable length (an error message may quote any input)."""
    return _SHORT.repr(value)


def one_line(text: str) -> str:
    """`text` as one printable line: control characters escaped, length capped (cut in the
    middle: the start names the file and field, the end usually says the fix)."""
    out = "".join(
        c.encode("unicode_escape").decode("ascii") if _unprintable(c) else c for c in text
    )
    if len(out) <= MAX_LINE:
        return out
    tail = MAX_LINE // 3
    return out[: MAX_LINE - tail - 1] + "…" + out[-tail:]
