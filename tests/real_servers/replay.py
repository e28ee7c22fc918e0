#!/usr/bin/env python3
"""Run a server's checker (check_vllm.py / check_sglang.py) over many recorded command lines in one process.

``replay.py SERVER RECORDS.json``: RECORDS holds one entry per exported ``-serve.sh``, the
argv that script handed to the server command and the variables it exported
(tests/real_servers/batch.py records them by running the script under bash). Each entry
runs the checker's own ``main()`` with that argv and those variables set, exactly as the
stand-in command of harness.py would have exec'd it; only the interpreter is shared.
Why: on CPU, importing vLLM or SGLang is most of a check's time (15 s and more on two
cores), the checker's steps themselves take seconds. Prints one JSON list of the verdicts,
in the order of the records. Runs inside the server venvs: standard library only.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import traceback
from pathlib import Path


def _verdict(checker, server: str, record: dict) -> dict:
    saved = dict(os.environ)
    os.environ.update(record["env"])
    sys.argv = [f"check_{server}.py", *record["argv"]]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            checker.main()
    except Exception:  # noqa: BLE001  # a checker bug, not a rejection: the test shows it
        return {"result": "ERROR", "step": None, "message": traceback.format_exc()[-3000:], "facts": {}}
    finally:
        os.environ.clear()
        os.environ.update(saved)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("{")]
    if not lines:
        return {"result": "ERROR", "step": None, "message": out.getvalue()[-3000:], "facts": {}}
    return json.loads(lines[-1])


def main() -> int:
    server, records = sys.argv[1], json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    checker = importlib.import_module(f"check_{server}")
    verdicts = [_verdict(checker, server, record) for record in records]
    print(json.dumps(verdicts, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
