#!/bin/sh
# Installs what tools/src/gen/whole_models.py needs to export the whole-model corpus: Debian's python3-torch
# and python3-onnx (PyPI is not used). Does nothing when /usr/bin/python3 already imports both.
#   tools/scripts/install-torch.sh        (as root, or with sudo available)
set -eu
PY=/usr/bin/python3
if [ -x "$PY" ] && "$PY" -c 'import torch, onnx' 2>/dev/null; then
  echo "python3-torch and python3-onnx are installed: $("$PY" -c 'import torch, onnx; print("torch", torch.__version__, "onnx", onnx.__version__)')"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-torch.sh: run as root (apt-get needs it) or install sudo" >&2; exit 1; }
  SUDO=sudo
fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends python3 python3-torch python3-onnx
"$PY" -c 'import torch, onnx; print("installed torch", torch.__version__, "onnx", onnx.__version__)'
