# Cloud Functions (Python) loads main.py from the source root; the handlers live in
# functions/main.py.
from functions.main import add_sample, predict, status  # noqa: F401
