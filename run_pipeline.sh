#!/usr/bin/env bash
# One command from a fresh clone to a trained model: set up .venv, install, fill an empty
# original_data/ with the sample data set, preprocess, train briefly, detect masks on sample photos,
# and write an HTML report tying the run together.
#
# Environment (all optional):
#   MASKDETECT_SAMPLE_DATA    URL, archive or folder of <class>/<photos> to fill an empty original_data/
#                             (default: the chandrikadeb7/Face-Mask-Detection data set at a fixed commit)
#   MASKDETECT_SAMPLE_SHA256  the sha256 the downloaded archive must have
#   MASKDETECT_DEMO_EPOCHS    epochs of the short training (default 5; train_a_model.py's own default is 30)
#   MASKDETECT_DATA           the photo folder (default original_data)
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
data="${MASKDETECT_DATA:-original_data}"
epochs="${MASKDETECT_DEMO_EPOCHS:-5}"
python=.venv/bin/python
started=$SECONDS

step() { printf '\n== %s (%d s)\n' "$1" "$((SECONDS - started))"; }

if [[ ! -x "$python" ]]; then
    step "setting up .venv"
    python3 -m venv .venv
fi
step "installing requirements.txt"
# pip skips what is installed already, so a rerun costs a few seconds
"$python" -m pip install --quiet --disable-pip-version-check -r requirements.txt

if [[ -z "$(ls -A "$data" 2>/dev/null)" ]]; then
    step "filling $data/ with the sample data set"
    # extracts or copies beside $data/ and renames it into place: never a half-filled folder
    "$python" -m maskdetect.sample_data --into "$data"
fi

step "preprocess.sh: organise, remove duplicates, crop faces"
./preprocess.sh --input "$data" --output processed_data --logs logs

step "train_a_model.py: a short training ($epochs epochs)"
"$python" train_a_model.py --data processed_data --logs logs --epochs "$epochs" --notes "run_pipeline.sh"

step "detect_mask.py on sample photos"
# the photos of each class in which the face stage found the most faces: crowds show the most
mapfile -d '' samples < <("$python" - processed_data/sources.csv <<'PYTHON'
import sys
from maskdetect import records

rows = [row for row in records.read_rows(sys.argv[1]) if row.get("faces", "0").isdigit() and int(row["faces"]) > 0]
chosen = []
for name in sorted({row["class"] for row in rows}):
    ranked = sorted((row for row in rows if row["class"] == name), key=lambda row: (-int(row["faces"]), row["source"]))
    chosen += [row["source"] for row in ranked[:3]]
sys.stdout.write("".join(f"{path}\0" for path in chosen))
PYTHON
)
detections=logs/detect/run_pipeline
rm -rf -- "$detections"  # the previous demo's annotated copies, regenerated now
if (( ${#samples[@]} )); then
    "$python" detect_mask.py "${samples[@]}" --logs logs --output "$detections"
else
    echo "no photo with a face to show; skipping detection"
fi

step "report"
"$python" -m maskdetect.report --logs logs --data "$data" --processed processed_data --detections "$detections" \
    --output logs/report.html

cat <<DONE

== done in $((SECONDS - started)) s. Where everything is:
  logs/report.html                 the report: detections, training curves, confusion matrix, counts (open it)
  $data/                   your photos, organised; set-aside files in $data/_rejected/<reason>/
  logs/preprocess/renames.csv      every rename and set-aside (./preprocess.sh --undo reverses them)
  processed_data/<class>/          256x256 face crops; processed_data/faces.csv lists them
  processed_data/_no_face/         photos with no face found, for manual cropping
  logs/review/<class>.html         review sheets: reject wrong crops, draw missed faces
  logs/runs/<run>/                 the trained model.keras, plots and metrics
  logs/training_log.csv            one row per training run
  $detections/        annotated photos, detections.csv, summary.json
Next: ./train_a_model.py --help, ./auto_train.py --help, ./detect_mask.py --help
DONE
