#!/usr/bin/env bash
# Fetches the sources the TFLM side of the comparison builds from, at pinned commits, into DEPS:
#   tflite-micro/  tensorflow/tflite-micro (tensorflow/, signal/, third_party/)
#   cmsis-nn/      ARM-software/CMSIS-NN at the commit that tflite-micro pins
#   flatbuffers/   google/flatbuffers v25.9.23 (include/), as tflite-micro pins it
#   gemmlowp/      google/gemmlowp (fixedpoint/, internal/), as tflite-micro pins it
#   ruy/           google/ruy (ruy/profiler/: headers the kernels include), as tflite-micro pins it
#   kws_ref_model.tflite  MLPerf Tiny's int8 keyword-spotting DS-CNN (mlcommons/tiny), its
#                         SHA-256 checked
# and writes DEPS/sources.json. Needs git, curl and network access to GitHub; or set
# EDGELOOP_GIT_URL to a template for local mirrors, e.g. '/srv/mirror/{owner}+{repo}' (default
# 'https://github.com/{owner}/{repo}.git'), and EDGELOOP_KWS_MODEL to a copy of the model.
#
#   bench/tflm/fetch.sh DEPS
set -euo pipefail
deps="$1"
mkdir -p "$deps"
deps="$(cd "$deps" && pwd)"
github='https://github.com/{owner}/{repo}.git'
url_template="${EDGELOOP_GIT_URL:-$github}"

TFLM=90b983c2b3f1480642e040bbd2ddb37b998f3424
CMSIS_NN=4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae
FLATBUFFERS=187240970746d00bbd26b0f5873ed54d2477f9f3 # v25.9.23
GEMMLOWP=719139ce755a0f31cbf1c37f7f98adcc7fc9f425
RUY=d37128311b445e758136b8602d1bbd2a755e115d
TINY=1afd2c9820f795965a6134facd0b4dfae41ef23f
KWS_MODEL=benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite
KWS_MODEL_SHA256=aeea436800704fce17b17292e4412630ad856e9d777c044c64ef748a880bd0ae

# get OWNER/REPO COMMIT DIR PATH...: the paths of the commit's tree, extracted into DEPS/DIR.
get() {
  local slug="$1" commit="$2" dir="$3"
  shift 3
  local url="${url_template//\{owner\}/${slug%%/*}}"
  url="${url//\{repo\}/${slug#*/}}"
  local git_dir
  git_dir="$(mktemp -d)"
  git init -q --bare "$git_dir"
  git -C "$git_dir" fetch -q --depth 1 "$url" "$commit"
  rm -rf "${deps:?}/$dir"
  mkdir -p "$deps/$dir"
  git -C "$git_dir" archive "$commit" "$@" | tar -x -C "$deps/$dir"
  rm -rf "$git_dir"
  echo "fetched $slug $commit -> $deps/$dir"
}

get tensorflow/tflite-micro "$TFLM" tflite-micro tensorflow signal third_party
get ARM-software/CMSIS-NN "$CMSIS_NN" cmsis-nn Include Source LICENSE
get google/flatbuffers "$FLATBUFFERS" flatbuffers include
get google/gemmlowp "$GEMMLOWP" gemmlowp fixedpoint internal
get google/ruy "$RUY" ruy ruy/profiler
# The model alone (the repository holds large files besides): EDGELOOP_KWS_MODEL names a local
# copy, or it is downloaded from GitHub at the pinned commit.
if [ -n "${EDGELOOP_KWS_MODEL:-}" ]; then
  cp "$EDGELOOP_KWS_MODEL" "$deps/kws_ref_model.tflite"
else
  curl -fsSL -o "$deps/kws_ref_model.tflite" \
    "https://raw.githubusercontent.com/mlcommons/tiny/$TINY/$KWS_MODEL"
fi
echo "$KWS_MODEL_SHA256  $deps/kws_ref_model.tflite" | sha256sum -c --quiet
cat > "$deps/sources.json" <<JSON
{"tflm": "$TFLM", "cmsis_nn": "$CMSIS_NN", "flatbuffers": "v25.9.23 $FLATBUFFERS",
 "gemmlowp": "$GEMMLOWP", "ruy": "$RUY", "mlcommons_tiny": "$TINY",
 "model": "$KWS_MODEL", "model_sha256": "$KWS_MODEL_SHA256"}
JSON
