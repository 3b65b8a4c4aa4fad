#!/usr/bin/env bash
# CI, after the tests: the documentation site and the built distributions.
#
# Assumes .venv exists with flowsim installed editable with the test extras (.ci/run makes
# it). Stages, each timed:
#   1. the docs tools into .venv (the "docs" extra);
#   2. the notebooks executed and exported to docs/notebooks/*.ipynb (quick mode; reused
#      from build/notebooks when the tests executed the same sources);
#   3. `mkdocs build --strict` into site/ (fails on a broken reference or a missing page;
#      the notebooks become pages of the site through mkdocs-jupyter, MathJax is copied
#      into it), then docs/check_site.py: no page loads anything from another host, the
#      math and notebook pages are there;
#   4. the sdist and the wheel with `python -m build` into dist/;
#   5. the wheel (not the checkout) installed into a fresh virtual environment;
#   6. a smoke test from outside the checkout: the README example and
#      `flowsim verify --quick --only "Proposition 1"`.
# Any failing stage stops the script with a non-zero exit status.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

ROOT=$PWD
PY=$ROOT/.venv/bin/python
# a folder of its own: two CI runs on one machine must not share (and delete) one venv
WHEEL_VENV=${FLOWSIM_WHEEL_VENV:-$(mktemp -d -t flowsim-wheel-XXXXXX)/venv}
DIST=$ROOT/dist

STAGE="setup"
STAGE_START=$SECONDS
trap 'rc=$?; echo "== $STAGE: FAILED (exit $rc) after $((SECONDS - STAGE_START)) s" >&2; exit $rc' ERR

step() {  # step NAME COMMAND...: run one stage and print the seconds it took
    STAGE=$1
    shift
    echo "== $STAGE"
    STAGE_START=$SECONDS
    "$@"
    echo "== $STAGE: $((SECONDS - STAGE_START)) s"
}

docs_tools() {
    "$PY" -m pip install -q -e ".[docs]"
}

notebooks() {
    "$PY" docs/build_notebooks.py
}

docs_site() {
    # (NO_MKDOCS_2_WARNING: no advertising banner from mkdocs-material in the log)
    NO_MKDOCS_2_WARNING=1 "$ROOT/.venv/bin/mkdocs" build --strict --site-dir "$ROOT/site"
    "$PY" docs/check_site.py "$ROOT/site"
}

distributions() {
    rm -rf "$DIST"
    "$PY" -m build --outdir "$DIST" .
    ls -l "$DIST"
}

wheel_venv() {
    local wheels=("$DIST"/flowsim-*.whl)
    if [ "${#wheels[@]}" -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
        echo "expected exactly one wheel in $DIST, found: ${wheels[*]}" >&2
        return 1
    fi
    rm -rf "$WHEEL_VENV"
    python3 -m venv "$WHEEL_VENV"
    "$WHEEL_VENV/bin/pip" install -q "${wheels[0]}"
}

smoke_test() {
    local work
    work=$(mktemp -d)
    cd "$work"
    # the installed wheel, not the checkout
    "$WHEEL_VENV/bin/python" - "$ROOT" <<'EOF'
import sys
from pathlib import Path

import flowsim as fs

checkout = Path(sys.argv[1]).resolve()
where = Path(fs.__file__).resolve()
assert checkout not in where.parents, f"flowsim imported from the checkout: {where}"
print(f"flowsim {fs.__version__} from {where.parent}")

problem = fs.paper_problem()
model = fs.DeepMatrixFactorization((2, 2), 3)
params = fs.balanced_init(model, seed=0, scale=1e-3, det_sign=+1)
traj = fs.gradient_flow(problem, model, params, stop_loss=1e-8)
assert traj.success, (traj.status, traj.message)
ratio = abs(traj.product[-1][0, 0]) * (2 * traj.loss[-1]) ** 0.5
assert abs(ratio - 1) < 1e-3, ratio
print(f"README example: {traj.status}, |W11| sqrt(2 loss) = {ratio:.6f}")
EOF
    "$WHEEL_VENV/bin/flowsim" verify --quick --only "Proposition 1" --out "$work/verify"
    cd "$ROOT"
    rm -rf "$work"
}

total_start=$SECONDS
step "docs tools (pip install -e .[docs])" docs_tools
step "notebooks (docs/build_notebooks.py)" notebooks
step "docs site (mkdocs build --strict, docs/check_site.py)" docs_site
step "sdist and wheel (python -m build)" distributions
step "wheel into a fresh venv ($WHEEL_VENV)" wheel_venv
step "smoke test of the installed wheel" smoke_test
echo "== docs and wheel: all stages passed in $((SECONDS - total_start)) s"
