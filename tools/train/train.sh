#!/usr/bin/env bash
# Trains and exports both byte models of examples/trained (CPU: the code LM alone on two threads, then the encoder
# on one), then writes their calibration folders. Run once, by hand, from the repository root:
#
#     bash tools/train/train.sh
#
# Needs Debian's python3-torch and python3-onnx (installed here when missing) and an optimized BLAS:
# Debian's python3-torch links the reference BLAS, about 3x slower; libopenblas0-pthread replaces it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3  # Debian's interpreter: its torch, not a pyenv or venv one
if ! "$PY" -c 'import torch, onnx' 2>/dev/null; then
  if [ -x tools/scripts/install-torch.sh ]; then tools/scripts/install-torch.sh
  else apt-get install -y python3-torch python3-onnx; fi
fi
if ! ls /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null 2>&1; then
  apt-get install -y libopenblas0-pthread
fi
mkdir -p /tmp/attnopt-train
# the code model writes the held-out sample the encoder is scored on: it runs first, alone, on two threads
# code-lm: bounded by wall clock (50 minutes: 30% at context 256, 40% at 1024, 30% at 2048), then evaluated and exported
OPENBLAS_NUM_THREADS=2 "$PY" tools/train/train_code_lm.py --max-seconds 3000 --threads 2 > /tmp/attnopt-train/code-lm.log 2>&1
"$PY" tools/train/train_byte_mlm.py > /tmp/attnopt-train/byte-mlm.log 2>&1
"$PY" tools/train/make_calibration.py
tail -n 3 /tmp/attnopt-train/code-lm.log /tmp/attnopt-train/byte-mlm.log
