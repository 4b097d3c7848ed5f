"""Checkpoint version names, without torch: what a command reading the store needs.

A version names a directory and a Redis value, so it is letters, digits, '.', '_' and
'-', at most 128 characters, starting with a letter or digit. `index/items.py` applies
the same rule to index versions (index/ imports nothing of towers/; a test checks that
the two agree).
"""

from __future__ import annotations

import re

__all__ = ["VERSION_RE"]

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
