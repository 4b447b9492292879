#!/bin/bash
# Issue-4 accelerator check in one short script: the per-encoder train-step table at the reference
# batch sizes in float32 and bfloat16, and matchmap scoring of a 1000 x 1000 validation matrix.
# Usage (from the repository root): OUT=/some/dir bash bench/gpu_encoders.sh
# If flax/optax/ml_collections are missing on the machine, wheels in runs/devwheels are used.
set -u
OUT=${OUT:-/tmp/gpu_encoders}
mkdir -p "$OUT"
nvidia-smi -L | tee "$OUT/device.txt"
if ! python -c "import flax, optax, ml_collections" 2>/dev/null; then
  pip install -q --no-deps --target /tmp/vgs_site runs/devwheels/*.whl && export PYTHONPATH=/tmp/vgs_site:${PYTHONPATH:-}
fi
python -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" | tee -a "$OUT/device.txt"
python bench/encoders_bench.py --dtype float32,bfloat16 --steps 3 2>&1 | grep -v "^W1\|WARNING" | tee "$OUT/encoders.txt"
python bench/matchmap_bench.py --captions 1000 --images 1000 --full_images 1000 --chunk 50 2>&1 | grep -v "^W1\|WARNING" | tee "$OUT/matchmap.txt"
