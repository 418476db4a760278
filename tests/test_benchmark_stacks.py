"""`benchmarks.stacks`: the summary of a `--profile` run's py-spy stacks."""

from __future__ import annotations

import pytest

from benchmarks.stacks import read, render

STACKS = [
    "main (m.py:1);poll (p.py:2);send (h.py:3) 6\n",
    "main (m.py:1);poll (p.py:2);mask (b.py:4) 3\n",
    "main (m.py:1);run_once (a.py:5);EpollSelector.select (selectors.py:468) 10\n",
    " 1\n",
    "\n",
]


def test_counts_inclusive_self_and_idle_apart() -> None:
    """Idle samples in select are counted apart; a frame's callees count in its inclusive."""
    profile = read(STACKS)
    assert (profile.busy, profile.idle) == (10, 10)
    assert profile.inclusive["poll (p.py:2)"] == 9
    assert profile.own["send (h.py:3)"] == 6
    assert profile.own["(no Python frame)"] == 1
    assert "poll (p.py:2)" not in profile.own
    text = render(profile, top=2)
    assert " 90.0%  main (m.py:1)" in text
    assert " 60.0%  send (h.py:3)" in text


def test_a_line_that_is_not_a_stack_is_named() -> None:
    """A stray line fails, naming its number and text."""
    with pytest.raises(ValueError, match=r"line 2 .*'not a stack'"):
        read(["main (m.py:1) 1\n", "not a stack\n"])
