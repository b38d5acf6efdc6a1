#!/usr/bin/env bash
# The GPU bundle's one command (written by `cargo xtask gpu-bundle`; docs/benchmarks.md):
#   OUT=<dir> ./run.sh
# 1. one MiniLM LoRA training step, Burn (bin/lora_step) against PyTorch + peft
#    (scripts/peft_step.py) on the same device, per backend and precision of bundle.json;
# 2. agreement: the fixed small SeqLoRA run on every backend against the ndarray report made
#    where the bundle was built (expected/agree-ndarray.json);
# 3. text5 runs (bundle.json's methods, data/paper.json) while the time budget lasts.
# Everything is logged under a work directory; scripts/summarize.py writes at most 8 small
# files into $OUT (summary.json, summary.md, log.txt, ...). Nothing is downloaded.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:?set OUT to the results directory}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$OUT" "$WORK"
PY=${PYTHON:-python3}
start=$(date +%s)
conf() { "$PY" -c "import json,sys; v=json.load(open('$HERE/bundle.json'))$1; print(' '.join(map(str, v)) if isinstance(v, list) else v)"; }
BUDGET=${BUDGET_S:-$(conf "['budget_s']")}
left() { echo $(( BUDGET - ($(date +%s) - start) )); }
log() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$WORK/log.txt" >&2; }

# Unpack what is carried xz-compressed (once; a second call on the same machine reuses it).
for packed in "$HERE"/bin/*.xz "$HERE"/data/*.xz; do
  [ -e "$packed" ] || continue
  plain=${packed%.xz}
  [ -e "$plain" ] && continue
  "$PY" - "$packed" "$plain" <<'PYEOF' || { echo "unpacking $packed failed" >&2; exit 1; }
import lzma, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
with lzma.open(src) as i, open(dst + ".part", "wb") as o:
    shutil.copyfileobj(i, o)
os.replace(dst + ".part", dst)
PYEOF
done
chmod +x "$HERE/bin/cl" "$HERE/bin/lora_step"

# wgpu: the bundled Vulkan loader, and NVIDIA's driver as the ICD when the machine has no ICD file.
export LD_LIBRARY_PATH="$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
has_icd=false
for icd in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json; do [ -e "$icd" ] && has_icd=true; done
if [ -z "${VK_ICD_FILENAMES:-}" ] && [ -e "$HERE/lib/nvidia_icd.json" ] && [ "$has_icd" = false ]; then
  export VK_ICD_FILENAMES="$HERE/lib/nvidia_icd.json"
fi
export CI=true
log "bundle $(conf "['built']"); budget ${BUDGET}s; backends: $(conf "['backends']"); Vulkan ICD: ${VK_ICD_FILENAMES:-system}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$WORK/log.txt" 2>&1 || true

# 1. Speed against PyTorch + peft.
for spec in $(conf "['speed']"); do
  backend=${spec%%:*}; precisions=${spec#*:}
  [ "$(left)" -gt 60 ] || { log "speed $spec: skipped (time)"; continue; }
  log "speed $backend $precisions"
  timeout "$(( $(left) - 30 ))" "$PY" "$HERE/scripts/speed_vs_peft.py" --burn-bin "$HERE/bin/lora_step" \
      --burn-backend "$backend" --torch-device "$(conf "['torch_device']")" --precisions "$precisions" \
      --batch "$(conf "['speed_batch']")" --seq "$(conf "['speed_seq']")" --steps "$(conf "['speed_steps']")" \
      --rounds "$(conf "['speed_rounds']")" --json "$WORK/speed-$backend.json" >>"$WORK/log.txt" 2>&1 \
    || log "speed $backend: failed (see log.txt)"
done

# 2. Agreement with the ndarray report bundled.
for backend in $(conf "['backends']"); do
  [ "$(left)" -gt 30 ] || { log "agree $backend: skipped (time)"; continue; }
  log "agree $backend"
  timeout "$(( $(left) - 20 ))" "$HERE/bin/cl" run --method seq-lora --stream-file "$HERE/data/agree.json" \
      --model-dir "$HERE/data" --epochs 1 --backend "$backend" --out "$WORK/agree/$backend" --overwrite \
      >>"$WORK/log.txt" 2>&1 || log "agree $backend: failed (see log.txt)"
done

# 3. text5 runs while time is left (each needs at least min_run_s).
for spec in $(conf "['paper_runs']"); do
  method=${spec%%:*}; config=${spec#*:}
  backend=$(conf "['paper_backend']")
  if [ "$(left)" -lt "$(conf "['min_run_s']")" ]; then log "text5 $method: skipped (time)"; continue; fi
  args=(run --method "$method" --stream-file "$HERE/data/paper.json" --model-dir "$HERE/data" --backend "$backend"
        --out "$WORK/paper/$method" --resume)
  [ "$config" = "-" ] || args+=(--config "$HERE/configs/$config")
  log "text5 $method on $backend"
  s=$(date +%s)
  timeout "$(( $(left) - 15 ))" "$HERE/bin/cl" "${args[@]}" >>"$WORK/log.txt" 2>&1 \
    || log "text5 $method: stopped or failed (see log.txt; a report may be partial)"
  echo "$method $(( $(date +%s) - s ))" >>"$WORK/paper-seconds.txt"
done

"$PY" "$HERE/scripts/summarize.py" --bundle "$HERE" --work "$WORK" --out "$OUT" --elapsed "$(( $(date +%s) - start ))"
