"""A maintenance run that SIGKILLs itself mid-archive (test_log's kill test) or mid-drain
(test_backlog's).

``put``: while the archive file is being written into the store (a partial file exists);
``fetch``: after the file was stored, while it is read back for verification (before the drop);
``batch:N:ROWS``: after the N-th batch of ROWS readings moved out of the DEFAULT partition.
The settings come from the environment, as ``potability maintenance`` reads them.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from potability.config import load_settings
from potability.inference import archive as inference_archive
from potability.inference import log as inference_log


class DyingStore(inference_archive.LocalStore):
    def __init__(self, root: Path, die_in: str) -> None:
        super().__init__(root)
        self.die_in = die_in

    def _die(self) -> None:
        print(f"dying in {self.die_in}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    def put(self, name: str, source: Path) -> None:
        if self.die_in == "put":
            partial = self.root / (name + ".partial")
            partial.parent.mkdir(parents=True, exist_ok=True)
            with open(source, "rb") as src, open(partial, "wb") as dst:
                dst.write(src.read(100))  # a part of it, then the kill
                dst.flush()
                self._die()
        super().put(name, source)

    def fetch(self, name: str, target: Path) -> None:
        if self.die_in == "fetch":
            self._die()
        super().fetch(name, target)


def _die_after(batches: int) -> Callable[[date, int], None]:
    seen = [0]

    def on_batch(day: date, moved: int) -> None:
        seen[0] += 1
        if seen[0] >= batches:
            print(f"dying after batch {seen[0]} ({day}, {moved} rows)", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    return on_batch


if __name__ == "__main__":
    settings = load_settings()
    if sys.argv[1].startswith("batch:"):
        _, batches, rows = sys.argv[1].split(":")
        inference_log.run_maintenance(
            settings, on_batch=_die_after(int(batches)), batch_rows=int(rows)
        )
    else:
        store = DyingStore(Path(settings.inference_archive_uri), sys.argv[1])
        inference_log.run_maintenance(settings, store=store)
    print("not killed", flush=True)
