#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, install, and run the pipeline on original_data/.
# When original_data/ is empty, MASKDETECT_SAMPLE_DATA may name a folder laid out as <class>/<photos>
# to copy in first.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
data="${MASKDETECT_DATA:-original_data}"

if [[ ! -x .venv/bin/python ]]; then
    echo "== setting up .venv"
    python3 -m venv .venv
fi
# pip skips what is installed already, so a rerun costs a few seconds
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

if [[ -z "$(ls -A "$data" 2>/dev/null)" ]]; then
    sample="${MASKDETECT_SAMPLE_DATA:-}"
    if [[ -z "$sample" ]]; then
        cat >&2 <<MESSAGE
error: $data/ is empty. Put your photos in $data/<class name>/ (e.g. $data/mask/ and
$data/without_mask/), or set MASKDETECT_SAMPLE_DATA to a folder laid out the same way.
MESSAGE
        exit 2
    fi
    if [[ ! -d "$sample" ]]; then
        echo "error: MASKDETECT_SAMPLE_DATA=$sample is not a folder" >&2
        exit 2
    fi
    echo "== copying the sample data set from $sample into $data/"
    # copy beside, then rename: an interrupted copy never leaves a half-filled data folder
    partial="$data.partial.$$"
    trap 'rm -rf -- "$partial"' EXIT
    cp -R -- "$sample" "$partial"
    chmod -R u+w -- "$partial"
    rmdir -- "$data" 2>/dev/null || true
    mv -- "$partial" "$data"
    trap - EXIT
fi

./preprocess.sh --input "$data" --output processed_data --logs logs
echo "outputs: $data/ (organised; set-aside files in $data/_rejected/), processed_data/, logs/preprocess/renames.csv"
