"""index/ is pure faiss + NumPy: it never pulls in torch, Kafka, Redis, streams or towers."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("torch", "streams", "towers", "redis", "kafka", "faust", "aiokafka")


def test_importing_index_loads_no_other_layer() -> None:
    code = ("import sys, index; print(sorted({m.split('.')[0] for m in sys.modules} & "
            f"set({FORBIDDEN!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
