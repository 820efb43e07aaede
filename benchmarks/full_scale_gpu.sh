#!/bin/bash
# Run chapters at SCALE="full" on a GPU machine that has PyTorch (CUDA), JAX, SciPy, scikit-learn and
# matplotlib but not the notebook stack (papermill, ipykernel, plotly, ipywidgets, ...).
#
#   bash benchmarks/full_scale_gpu.sh wheels            # here, once (needs the package index):
#                                                       # the notebook stack as cp312 wheels in .whl/
#   bash benchmarks/full_scale_gpu.sh run SECONDS SPEC… # there: each chapter in parallel, at most
#                                                       # SECONDS each, `python -m sparsebook reproduce
#                                                       # KEY --scale full`; logs, notebooks, figures and
#                                                       # claims.json, and every training loop's progress
#                                                       # (progress.log), as $OUT/KEY.tgz (or /tmp/full/KEY)
# SPEC is KEY[:GPU[:WORKERS]]: the chapter, the GPU it sees (CUDA_VISIBLE_DEVICES, default 0) and its
# number of worker processes (SPARSEBOOK_WORKERS, default 3).  Chapters on one GPU share it.
set -u
case "${1:-}" in
wheels)
  mkdir -p .whl && cd .whl || exit 1
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any -d . \
    $(grep -iE '^(papermill|ipykernel|ipython|ipywidgets|plotly|nbclient|nbformat|jupyter_client|jupyter_core|pyzmq|tornado|traitlets|debugpy)==' ../constraints.txt)
  # what the GPU image already has (keep its versions)
  rm -f attrs-* certifi-* charset_normalizer-* click-* idna-* narwhals-* packaging-* psutil-* pygments-* \
        python_dateutil-* pyyaml-* requests-* tqdm-* typing_extensions-* urllib3-* tzdata-*
  ls | wc -l ;;
run)
  T=$2; shift 2
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYDEVD_DISABLE_FILE_VALIDATION=1
  export SPARSEBOOK_WORKERS=${SPARSEBOOK_WORKERS:-3}
  OUT=${OUT:-/tmp/full}
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'python', sys.version.split()[0])"
  keys=()
  for spec in "$@"; do
    IFS=: read -r k gpu workers <<< "$spec"; keys+=("$k")
    ( mkdir -p /tmp/full/$k
      CUDA_VISIBLE_DEVICES=${gpu:-0} SPARSEBOOK_WORKERS=${workers:-$SPARSEBOOK_WORKERS} \
      SPARSEBOOK_PROGRESS=/tmp/full/$k/progress.log \
      /usr/bin/time -f "$k: wall %e s, max RSS %M KB" timeout "$T" python3 -m sparsebook reproduce "$k" --scale full \
        --out /tmp/full/$k > /tmp/full/$k/run.log 2>&1
      echo "$k: exit status $?" >> /tmp/full/$k/run.log ) &
  done
  wait
  for k in "${keys[@]}"; do
    echo "== $k"; grep -v "Executing" /tmp/full/$k/run.log | tail -n 4
    [ "$OUT" != /tmp/full ] && tar czf "$OUT/$k.tgz" -C /tmp/full "$k"
  done ;;
*) sed -n '2,12p' "$0"; exit 2 ;;
esac
