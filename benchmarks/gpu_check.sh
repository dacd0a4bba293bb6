#!/usr/bin/env bash
# One check of the project on a fresh GPU machine, in at most about 8 minutes (BUDGET_S, default 480):
#  1. installs the wheels of .gpu_wheels/ (benchmarks/gpu_prepare.sh fetches them; the machine reaches no index);
#  2. prints the device and the versions (torch, torchvision, CUDA, cuDNN, NCCL, PyAV, OpenCV);
#  3. runs the CUDA-marked tests (python -m pytest -m cuda tests);
#  4. trains srtg_r3d_18 on the synthetic set for 2 epochs from SQLite with --precision fp16, then again with
#     --decode gpu; evaluates and predicts with that checkpoint on the GPU and exports it (TorchScript, ONNX);
#  5. runs python -m benchmarks.bench_gpu in the time left.
# Everything goes under $OUT (default ./gpu_check_out): summary.md (one row per step: result and seconds),
# check.log (every command's output), bench_gpu.md/.json and results-<run>.txt (each run's results CSVs): six
# files. The data set, runs and exports go under $WORK (default: a new folder under /tmp). Exit status: 0 when
# every step passed.
#
#   bash benchmarks/gpu_check.sh [--dry-run]
#
# --dry-run (or CPU=1): the same steps on the CPU with tiny sizes (a tiny set, fp32, 4x32² clips, the
# tests/cuda folder, which skips its tests without a GPU, bench_gpu --smoke); the test suite runs this.
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "error: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done
[[ "${CPU:-0}" == "1" ]] && DRY=1
OUT=${OUT:-$ROOT/gpu_check_out}
WORK=${WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
BUDGET_S=${BUDGET_S:-480}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
LOG=$OUT/check.log
SUMMARY=$OUT/summary.md
: >"$LOG"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
START=$SECONDS
FAILED=()

if [[ $DRY == 1 ]]; then
    DEVICE=cpu PRECISION=fp32 TESTS=${TESTS:-tests/cuda} WORKERS=0
    DATA_ARGS=(--videos-per-class 3 --frames 8 --size 32 --workers 1)
    TRAIN_ARGS=(--clip-length 4 --clip-size 32 --val-clip-length 4 --val-clip-size 32 --batch-size 4)
else
    DEVICE=cuda PRECISION=fp16 TESTS=${TESTS:-tests} WORKERS=8
    DATA_ARGS=(--videos-per-class 60 --workers 8)  # 480 clips of 32 frames at 64²: 360 train, 120 val
    TRAIN_ARGS=()
fi

elapsed() { echo $((SECONDS - START)); }

# step NAME LIMIT_S COMMAND...: run COMMAND under a time limit, its output appended to check.log, one summary row
step() {
    local name=$1 limit=$2
    shift 2
    local began=$SECONDS rc=0 result=ok
    printf '\n=== %s (at %d s): %s\n' "$name" "$(elapsed)" "$*" >>"$LOG"
    timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        result="FAILED (exit $rc$([[ $rc -eq 124 ]] && echo ", over its ${limit} s"))"
        FAILED+=("$name")
    fi
    printf '| %s | %s | %d |\n' "$name" "$result" "$((SECONDS - began))" >>"$SUMMARY"
    printf '%-14s %s (%d s)\n' "$name" "$result" "$((SECONDS - began))"
    return $rc
}

printf '# GPU check (%s)\n\n| step | result | seconds |\n|---|---|---|\n' \
    "$([[ $DRY == 1 ]] && echo "dry run on CPU" || echo "$(date -u '+%Y-%m-%d %H:%M UTC')")" >"$SUMMARY"

# 1. wheels the image lacks, into a folder of their own (the image's packages stay as they are)
if [[ $DRY == 0 ]] && compgen -G ".gpu_wheels/*.whl" >/dev/null; then
    step install 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$WORK/site" .gpu_wheels/*.whl
    export PYTHONPATH=$WORK/site
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}

# 2. device and versions
step versions 120 "$PY" - "$DEVICE" <<'EOF'
import sys

import av
import coloredlogs  # noqa: F401  (the console log needs it)
import cv2
import numpy
import ptflops  # noqa: F401  (tools.profile_model needs it)
import torch
import torchvision

print(f"python {sys.version.split()[0]}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"numpy {numpy.__version__}, PyAV {av.__version__}, OpenCV {cv2.__version__}")
if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA device is visible to torch")
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}; CUDA "
          f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, NCCL "
          f"{'.'.join(map(str, torch.cuda.nccl.version()))}")
else:
    print("device: cpu (dry run)")
EOF
[[ $DRY == 0 ]] && command -v nvidia-smi >/dev/null && nvidia-smi >>"$LOG" 2>&1

# 3. the CUDA-marked tests (skipped, with the reason, without a GPU)
step cuda-tests 240 "$PY" -m pytest -q -rs -p no:cacheprovider -m cuda "$TESTS"

# 4. train, evaluate, predict, export
step data 150 "$PY" -m data.synthetic --out "$WORK/synthetic" "${DATA_ARGS[@]}"
step videos 60 "$PY" -m data.synthetic --out "$WORK/clips" --classes 2 --videos-per-class 1 --frames 32 --size 64 \
    --videos "$WORK/videos"
train() {  # train NAME EXTRA...: 2 epochs of srtg_r3d_18 from the SQLite frames; its results CSVs into $OUT
    local name=$1
    shift
    step "train-$name" 200 "$PY" train_synthetic.py --dataset "$WORK/synthetic" --network srtg_r3d_18 \
        --end-epoch 2 --save-frequency 2 --device "$DEVICE" --precision "$PRECISION" --workers "$WORKERS" \
        --model-dir "$WORK/runs/$name" "${TRAIN_ARGS[@]}" "$@"
    local csv  # one file per run: at most 8 files come back from a GPU machine's $OUT
    for csv in "$WORK/runs/$name"/*/*.csv; do
        [[ -f $csv ]] && printf '# %s\n%s\n\n' "$(basename "$csv")" "$(cat "$csv")"
    done >"$OUT/results-$name.txt"
    return 0
}
train fp16
train decode-gpu --decode gpu
CKPT=$(find "$WORK/runs/fp16" -name 'srtg_r3d_18_ep-0002.pth' | head -n 1)
if [[ -z $CKPT ]]; then
    echo "no checkpoint from train-fp16: evaluate, predict and export are skipped" | tee -a "$LOG"
    printf '| evaluate, predict, export | skipped (no checkpoint) | 0 |\n' >>"$SUMMARY"
    FAILED+=("no checkpoint")
else
    step evaluate 150 "$PY" evaluate.py --checkpoint "$CKPT" --dataset "$WORK/synthetic" --device "$DEVICE" \
        --clips 2 --crops 1 --workers "$WORKERS" --out "$WORK/eval"
    step predict 90 "$PY" predict.py --checkpoint "$CKPT" --device "$DEVICE" --json \
        $(find "$WORK/videos" -name '*.mp4' | sort)
    # tools.export traces on the CPU: the checkpoint written on the GPU is read there
    step export-ts 150 "$PY" -m tools.export --checkpoint "$CKPT" --format torchscript --out "$WORK/model.pt"
    step export-onnx 150 "$PY" -m tools.export --checkpoint "$CKPT" --format onnx --out "$WORK/model.onnx"
fi

# 5. the GPU benchmark in the time left (its step rows stop at --budget-s; loader and busy rows follow)
LEFT=$((BUDGET_S - $(elapsed)))
if [[ $DRY == 1 ]]; then
    step bench-gpu 300 "$PY" -m benchmarks.bench_gpu --smoke --out "$OUT"
elif [[ $LEFT -gt 120 ]]; then  # ~100 s after the step rows: one last row, the loader rows and the busy run
    step bench-gpu "$((LEFT - 10))" "$PY" -m benchmarks.bench_gpu --budget-s "$((LEFT - 110))" --workers 8 --out "$OUT"
else
    printf '| bench-gpu | skipped (%d s left of %d) | 0 |\n' "$LEFT" "$BUDGET_S" >>"$SUMMARY"
fi

printf '\ntotal %d s; work folder %s\n' "$(elapsed)" "$WORK" | tee -a "$SUMMARY"
if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "failed: ${FAILED[*]} (see $LOG)" | tee -a "$SUMMARY"
    exit 1
fi
echo "every step passed" | tee -a "$SUMMARY"
