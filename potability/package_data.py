"""Where the files that ship beside the code are: ``sql/`` (the migrations) and ``data/`` (the
public data set).

Three layouts run this code. A checkout and the Cloud Functions' zip (terraform/functions.tf)
keep them at the top level, beside ``potability/``. The project image installs the project as a
wheel (``uv sync --no-editable``, Dockerfile), where nothing outside site-packages exists: there
pyproject's ``package-dir`` puts them inside the package as ``potability/_sql`` and
``potability/_data``. Reading ``Path(__file__).parent.parent / "sql"`` there found nothing, and
the migration job applied no migration and reported success (issue 19; tests/test_image.py).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """The directory ``name`` (``sql`` or ``data``): inside the installed package if it is
    there, else beside the package (checkout, function zip)."""
    installed = _PACKAGE / f"_{name}"
    return installed if installed.is_dir() else _PACKAGE.parent / name
