#!/bin/sh
# Rebuilds tests/data/arch/: llama.cpp's logits (scripts/llamacpp-logits.c)
# on the tiny models of scripts/make-arch-models.py, which tests/test_arch.c
# compares lm with. The references are committed, so the suite needs no
# llama.cpp; the models are not (the Makefile makes them, byte for byte the
# same, into build/arch-models). Run this only when the models or prompts
# change.
#
# usage: scripts/make-arch-refs.sh [LLAMA_CPP_DIR]
#   LLAMA_CPP_DIR: a llama.cpp source tree built in its build/ folder
#   (headers in include/ and ggml/include/, libllama in build/bin/);
#   default $LLAMA_CPP.
# Environment: PYTHON (default python3, with numpy and gguf), CC (default cc).
set -eu

llama=${1:-${LLAMA_CPP:-}}
if [ -z "$llama" ] || [ ! -d "$llama/build/bin" ]; then
    echo "usage: scripts/make-arch-refs.sh LLAMA_CPP_DIR (or set LLAMA_CPP): a built llama.cpp tree" >&2
    exit 2
fi
out=tests/data/arch models=build/arch-models
mkdir -p "$models" "$out"
${CC:-cc} -O2 scripts/llamacpp-logits.c -I"$llama/include" -I"$llama/ggml/include" \
    -L"$llama/build/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$llama/build/bin" -o build/llamacpp-logits
rm -f "$models"/*.gguf "$out"/*.ref
${PYTHON:-python3} scripts/make-arch-models.py "$models"
cp "$models/prompts.txt" "$out/prompts.txt"
for model in "$models"/*.gguf; do
    name=$(basename "$model" .gguf)
    build/llamacpp-logits "$model" "$out/prompts.txt" "$out/$name.ref"
    echo "$name: $(sed -n 3p "$out/$name.ref")"
done
