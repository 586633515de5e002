"""Regenerate (or, with --check, verify) the committed JSON Schema of event contract v1.

python docs/contract/generate.py          # write docs/contract/taskledger.events.v1.schema.json
python docs/contract/generate.py --check  # exit 1 if the committed file is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from domain.contract import SCHEMA_FILE, main  # noqa: E402 - after the sys.path line above

if __name__ == "__main__":
    mode = "--check" if "--check" in sys.argv[1:] else "--write"
    raise SystemExit(main([mode, str(HERE / SCHEMA_FILE)]))
