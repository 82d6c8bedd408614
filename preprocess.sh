#!/usr/bin/env bash
# Clean original_data/ in one command: organise (check, set aside, rename), remove duplicates,
# then crop the faces into processed_data/ (when process_faces.py is present).
# Every change to the input is journaled in <logs>/preprocess/renames.csv; --undo reverses them all.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: ./preprocess.sh [--input DIR] [--output DIR] [--logs DIR] [--dry-run] [--delete] [--undo]
                       [--min-size PX] [--max-pixels N] [--hash-distance BITS] [--jobs N]
                       [--skip-faces] [-- PROCESS_FACES_FLAGS...]

  --input DIR          photos, one subfolder per class (default: original_data)
  --output DIR         where process_faces.py writes the face crops (default: processed_data)
  --logs DIR           journal and records (default: logs)
  --dry-run            print what would change, change nothing
  --delete             delete unusable files and duplicates instead of setting them aside
  --undo               restore the original names and everything set aside, then stop
  --min-size PX        set aside images whose shorter side is below PX (default 32)
  --max-pixels N       set aside images with more than N pixels, never decoding them (default 89478485)
  --hash-distance BITS near-duplicate threshold, 0 = exact copies only (default 4)
  --jobs N             processes to use (default: all cores)
  --skip-faces         stop after duplicate removal
  Flags after a lone -- go to process_faces.py unchanged.
USAGE
}

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$here/.venv/bin/python" ]]; then PYTHON="$here/.venv/bin/python"; else PYTHON=python3; fi
fi

input=original_data
output=processed_data
logs=logs
dry_run=0
delete=0
undo=0
skip_faces=0
organise_flags=()
dedup_flags=()
faces_flags=()

need_value() {
    if [[ $# -lt 2 ]]; then
        echo "error: $1 needs a value (see --help)" >&2
        exit 2
    fi
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --input) need_value "$@"; input="$2"; shift 2 ;;
        --input=*) input="${1#*=}"; shift ;;
        --output) need_value "$@"; output="$2"; shift 2 ;;
        --output=*) output="${1#*=}"; shift ;;
        --logs) need_value "$@"; logs="$2"; shift 2 ;;
        --logs=*) logs="${1#*=}"; shift ;;
        --dry-run) dry_run=1; shift ;;
        --delete) delete=1; shift ;;
        --undo) undo=1; shift ;;
        --skip-faces) skip_faces=1; shift ;;
        --min-size) need_value "$@"; organise_flags+=("$1=$2"); shift 2 ;;
        --min-size=*) organise_flags+=("$1"); shift ;;
        # every step that decodes photos takes the same limit
        --max-pixels) need_value "$@"; organise_flags+=("$1=$2"); dedup_flags+=("$1=$2"); faces_flags+=("$1=$2"); shift 2 ;;
        --max-pixels=*) organise_flags+=("$1"); dedup_flags+=("$1"); faces_flags+=("$1"); shift ;;
        --hash-distance) need_value "$@"; dedup_flags+=("$1=$2"); shift 2 ;;
        --hash-distance=*) dedup_flags+=("$1"); shift ;;
        --jobs) need_value "$@"; organise_flags+=("$1=$2"); dedup_flags+=("$1=$2"); faces_flags+=("$1=$2"); shift 2 ;;
        --jobs=*) organise_flags+=("$1"); dedup_flags+=("$1"); faces_flags+=("$1"); shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; faces_flags+=("$@"); break ;;
        *) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

if [[ ! -d "$input" ]]; then
    echo "error: input folder '$input' does not exist; put your photos in $input/<class name>/" >&2
    exit 2
fi

# "--flag=value" throughout, so a path that starts with "-" is never read as an option.
common=("--input=$input" "--logs=$logs")
(( dry_run )) && common+=(--dry-run)
(( delete )) && common+=(--delete)

run_python() { PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "$@"; }

if (( undo )); then
    run_python -m maskdetect.organize "--input=$input" "--logs=$logs" --undo
    exit $?
fi

# Every flag, those for process_faces.py included, is checked before step 1 renames anything.
run_python -m maskdetect.organize "${common[@]}" "${organise_flags[@]}" --check
run_python "$here/remove_duplicates.py" "${common[@]}" "${dedup_flags[@]}" --check
if (( ! skip_faces && ! dry_run )); then
    run_python "$here/process_faces.py" "--input=$input" "--output=$output" "--logs=$logs" "${faces_flags[@]}" --check
fi

echo "== 1/3 organise: $input"
run_python -m maskdetect.organize "${common[@]}" "${organise_flags[@]}"

echo "== 2/3 remove duplicates: every class folder of $input"
run_python "$here/remove_duplicates.py" "${common[@]}" "${dedup_flags[@]}"

if (( skip_faces )); then
    echo "== 3/3 face crops: skipped (--skip-faces)"
elif (( dry_run )); then
    echo "== 3/3 face crops: skipped in a dry run (it only writes to $output)"
else
    echo "== 3/3 face crops: $input -> $output"
    run_python "$here/process_faces.py" "--input=$input" "--output=$output" "--logs=$logs" "${faces_flags[@]}"
fi
echo "preprocess: done; journal of every change in $logs/preprocess/renames.csv (undo: ./preprocess.sh --input $input --logs $logs --undo)"
