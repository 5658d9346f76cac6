#!/usr/bin/env bash
# Idempotently create the two tool virtual environments used by tests/terraform:
#   .venv-tf       the `tf` package (Terraform plugin protocol in Python) that the
#                  schema-only stand-in google provider is built on; tf needs
#                  protobuf<6, which clashes with the main venv.
#   .venv-checkov  checkov, whose bundled hcl2 clashes with python-hcl2.
# Re-running is cheap: a venv whose marker file matches the pinned spec is kept.
# Both are compiled to bytecode when created: where PYTHONDONTWRITEBYTECODE is set (CI images)
# every checkov and stand-in provider start would otherwise compile its imports again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"

TF_SPEC="tf==1.2.*"
CHECKOV_SPEC="checkov==3.3.30"

# uv: $UV if given (the Makefile passes its pinned one), else uv on PATH, else venv + pip.
UV="${UV:-uv}"
have_uv() { command -v "$UV" >/dev/null 2>&1; }

make_venv() { # make_venv DIR SPEC IMPORT_CHECK
  local dir="$1" spec="$2" check="$3"
  local marker="$dir/.tools-spec"
  if [[ -f "$marker" && "$(cat "$marker")" == "$spec" ]] \
     && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "setup-tf-tools: $dir ok ($spec)"
    return 0
  fi
  echo "setup-tf-tools: creating $dir ($spec)"
  rm -rf "$dir"
  if have_uv; then
    "$UV" venv --quiet --python "$PY" "$dir"
    "$UV" pip install --quiet --compile-bytecode --python "$dir/bin/python" "$spec"
  else
    "$PY" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet "$spec"
    "$dir/bin/python" -m compileall -q "$dir/lib" >/dev/null
  fi
  "$dir/bin/python" -c "$check"
  echo "$spec" >"$marker"
}

make_venv "$ROOT/.venv-tf" "$TF_SPEC" "import tf.provider, tf.runner"
make_venv "$ROOT/.venv-checkov" "$CHECKOV_SPEC" "import checkov"

# Terraform itself is not a PyPI/Debian package here; the machine image ships it.
command -v terraform >/dev/null 2>&1 || {
  echo "setup-tf-tools: WARNING: terraform is not on PATH; tests/terraform will fail." >&2
  echo "  Install Terraform >= 1.11 (terraform/versions.tf) from HashiCorp's release zip" >&2
  echo "  or apt repository." >&2
}
