#!/usr/bin/env bash
# gpu_check.py on a lent device machine: one CUDA GPU, no package index, the working tree and the
# carried wheels. Here, once: `python benchmarks/device_wheels.py fetch` (-> .device-wheels/, the
# wheels docs/benchmarks.md lists). There (the device tool's run, from the repository root):
#   command: benchmarks/gpu_check_device.sh     carry: [".device-wheels"]     timeout_s: 540
# Installs the wheels with --target into /tmp/a3po-site (the device's own packages stay as they
# are; AReaL's .pth-free install, which is why gpu_check.py activates the plugin explicitly), runs
# the full Qwen2.5-1.5B shape and leaves gpu_check.json and its log in $OUT (or /tmp/a3po-gpu-check).
# Keep the JSON as docs/benchmarks/gpu_check/cuda_qwen2.5-1.5b.json, then benchmarks/update_docs.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
wheels=${A3PO_DEVICE_WHEELS:-.device-wheels}
out=${OUT:-/tmp/a3po-gpu-check}
mkdir -p "$out"
ls "$wheels"/areal-*.whl "$wheels"/areal_a3po-*.whl >/dev/null  # fetched and carried?
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/a3po-site "$wheels"/*.whl
export PYTHONPATH=/tmp/a3po-site PYTHONUNBUFFERED=1
python3 - <<'EOF' 2>&1 | tee "$out/device.txt"
import sys, torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else "NONE")
EOF
set +e
python3 benchmarks/gpu_check.py --device cuda --out "$out/gpu_check.json" 2>&1 | tee "$out/gpu_check.log"
rc=${PIPESTATUS[0]}
echo "gpu_check exit status: $rc (0: every check passed; the JSON is in $out)"
exit "$rc"
