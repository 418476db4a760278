"""`python -m benchmarks.stacks FILE [--top N]`: where a `--profile` run spent its time.

Reads py-spy's raw (collapsed) stacks, one `frame;frame;... count` per line, and prints
the frames with the most samples, inclusive (the frame or anything it called) and self
(the frame itself). Samples of the event loop waiting in `select` are idle time: they
are counted apart and left out of the percentages.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_IDLE = ("select (selectors.py", "EpollSelector.select", "KqueueSelector.select")


@dataclass
class Profile:
    """Samples by frame: inclusive and self counts, busy and idle totals."""

    busy: int = 0
    idle: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)


def read(lines: Iterable[str]) -> Profile:
    """A profile from collapsed-stack lines; a line that is not one is an error naming it."""
    profile = Profile()
    for number, line in enumerate(lines, 1):
        text = line.rstrip("\n")
        if not text:
            continue
        stack, _, count = text.rpartition(" ")
        if not count.isdigit():
            msg = f"line {number} is not `frame;frame;... count`: {text[:80]!r}"
            raise ValueError(msg)
        # py-spy writes an empty stack for a sample with no Python frame on it.
        frames = stack.split(";") if stack.strip() else ["(no Python frame)"]
        samples = int(count)
        if frames[-1].startswith(_IDLE):
            profile.idle += samples
            continue
        profile.busy += samples
        profile.own[frames[-1]] += samples
        for frame in set(frames):
            profile.inclusive[frame] += samples
    return profile


def render(profile: Profile, top: int) -> str:
    """The two top-N tables as text, in percent of the busy samples."""
    total = profile.busy or 1
    lines = [f"{profile.busy} busy samples, {profile.idle} idle (waiting in select)"]
    for title, counts in (("inclusive", profile.inclusive), ("self", profile.own)):
        lines += ["", f"-- {title}"]
        lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in counts.most_common(top)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stacks", description=__doc__)
    parser.add_argument("file", type=Path, help="a raw stacks file written by --profile")
    parser.add_argument("--top", type=int, default=30, help="frames per table (default 30)")
    args = parser.parse_args(argv)
    try:
        with args.file.open(encoding="utf-8") as stacks:
            profile = read(stacks)
    except (OSError, ValueError) as error:
        print(f"cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    print(render(profile, args.top))
    return 0


__all__ = ["Profile", "main", "read", "render"]

if __name__ == "__main__":
    sys.exit(main())
