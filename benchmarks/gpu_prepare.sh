#!/usr/bin/env bash
# Download, on a machine with internet, the wheels the GPU machine's image lacks into .gpu_wheels/ (git ignores
# it), for that image's Python (3.12 where last seen; --python X.Y for another). The GPU machine reaches no
# package index: benchmarks/gpu_check.sh installs these files from the folder, with --no-index --no-deps.
#
#   bash benchmarks/gpu_prepare.sh [--python 3.12] [--dest .gpu_wheels]
#
# The image already holds torch, torchvision, numpy, OpenCV (headless), matplotlib, tensorboard, onnx,
# onnxruntime, PyYAML, tqdm and pytest; it lacks coloredlogs (+ humanfriendly), av and ptflops. The versions
# below are the ones requirements.txt pins or the test machine runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=3.12
DEST=.gpu_wheels
while [[ $# -gt 0 ]]; do
    case "$1" in
        --python) PYVER=$2; shift 2 ;;
        --dest) DEST=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
WHEELS=(coloredlogs==15.0.1 humanfriendly==10.0 av==18.1.0 ptflops==0.7.5)
mkdir -p "$DEST"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$p")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    "${PLATFORMS[@]}" --dest "$DEST" "${WHEELS[@]}"
echo "wheels for Python $PYVER in $DEST:"
ls -la "$DEST"
du -sh "$DEST"
