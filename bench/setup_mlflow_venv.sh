#!/usr/bin/env bash
# Create bench/.venv-mlflow with the MLflow release pinned in bench/requirements-mlflow.txt.
# Idempotent: does nothing if that venv already has the pinned version installed.
# Usage: bash bench/setup_mlflow_venv.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-mlflow"
req="$here/requirements-mlflow.txt"
python="${PYTHON:-python3}"

want="$(sed -n 's/^[[:space:]]*mlflow==\([^[:space:]#]*\).*/\1/p' "$req" | head -n1)"
if [[ -z "$want" ]]; then
    echo "error: no 'mlflow==X.Y.Z' pin found in $req" >&2
    exit 1
fi

if [[ -x "$venv/bin/python" ]]; then
    have="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mlflow"))' 2>/dev/null || true)"
    # Every other exact pin (pyspark, ...) must be installed at its version too.
    if [[ "$have" == "$want" ]] && "$venv/bin/python" - "$req" <<'PYEOF' 2>/dev/null; then
import importlib.metadata as m, re, sys
for line in open(sys.argv[1]):
    pin = re.match(r"\s*([A-Za-z0-9_.\-\[\]]+)==([^\s#]+)", line)
    if pin and m.version(re.sub(r"\[.*\]", "", pin[1])) != pin[2]:
        sys.exit(1)
PYEOF
        echo "mlflow $want (and the other pins) already installed in $venv"
        exit 0
    fi
    echo "found $venv with mlflow '${have:-none}' or another pin missing, installing $req"
else
    echo "creating $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi

"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$req"

# Compile bytecode up front so the first timed import is not paying for it.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$venv/bin/python" -m compileall -q -j 0 "$site" >/dev/null 2>&1 || true

echo "installed: mlflow $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mlflow"))') in $venv"
