#!/usr/bin/env bash
# Builds TensorFlow Lite Micro's keyword-spotting firmware for QEMU's mps2-an386 (Cortex-M4F)
# with the flags of TFLM's own release build (core -Os, kernels and CMSIS-NN -O2,
# TF_LITE_STRIP_ERROR_STRINGS, NDEBUG, TF_LITE_STATIC_MEMORY, section GC), three ways:
# `cmsis_nn` (TFLM's optimized Cortex-M kernels, OPTIMIZED_KERNEL_DIR=cmsis_nn) and `reference`
# for the Cortex-M4F, and `cmsis_nn_m0plus` for the Cortex-M0+ (ARMv6-M, soft float: CMSIS-NN's
# plain-C paths), which the board's Cortex-M4 runs as it is.
#
#   bench/tflm/build.sh DEPS OUT
#
# DEPS holds the sources at the commits `fetch.sh` names: tflite-micro/, cmsis-nn/,
# flatbuffers/, gemmlowp/, ruy/ and kws_ref_model.tflite (MLPerf Tiny's int8 DS-CNN). OUT receives
# tflm-cmsis_nn.elf, tflm-reference.elf and tflm-cmsis_nn_m0plus.elf. Needs arm-none-eabi-gcc
# with newlib (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi
# libstdc++-arm-none-eabi-newlib).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
deps="$(cd "$1" && pwd)"
out="$(mkdir -p "$2" && cd "$2" && pwd)"
T="$deps/tflite-micro"
NN="$deps/cmsis-nn"
jobs="${JOBS:-$(nproc)}"

m4=(-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard -mthumb)
m0plus=(-mcpu=cortex-m0plus -mfloat-abi=soft -mthumb)
common=(-fno-unwind-tables -fno-asynchronous-unwind-tables -ffunction-sections
  -fdata-sections -fmessage-length=0 -DTF_LITE_STATIC_MEMORY -DTF_LITE_DISABLE_X86_NEON
  -DNDEBUG -DTF_LITE_STRIP_ERROR_STRINGS -DARM_NN_ENABLE_F16=0 -DARM_NN_ENABLE_F32=0
  -I"$T" -I"$deps/flatbuffers/include" -I"$deps/gemmlowp" -I"$deps/ruy" -I"$NN" -I"$NN/Include" -w)
cxx=(-std=c++17 -fno-rtti -fno-exceptions -fno-threadsafe-statics)

# TFLM's core (its Makefile's MICROLITE_CC_BASE_SRCS without tests) and the kernels this model
# registers.
core=()
for f in "$T"/tensorflow/lite/micro/*.cc "$T"/tensorflow/lite/micro/arena_allocator/*.cc \
  "$T"/tensorflow/lite/micro/memory_planner/*.cc "$T"/tensorflow/lite/micro/tflite_bridge/*.cc; do
  case "$f" in *_test.cc | */test_helper*.cc | */fake_micro_context.cc | */mock_micro_graph.cc | */recording_micro_allocator.cc) continue ;; esac
  core+=("$f")
done
while IFS= read -r f; do core+=("$f"); done < <(cd "$T" && find tensorflow -type d \
  \( -path tensorflow/lite/experimental -o -path tensorflow/lite/micro \) -prune -false \
  -o \( -name '*.cc' -o -name '*.c' \) -print | grep -v 'tensorflow/lite/array.cc' | sed "s|^|$T/|")
kernels_common=(kernel_util micro_tensor_utils conv_common depthwise_conv_common pooling_common
  reshape reshape_common fully_connected_common softmax_common)
kernels_opt=(conv depthwise_conv pooling fully_connected softmax)

python3 - "$deps/kws_ref_model.tflite" "$out/model.c" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "w") as f:
    f.write('__attribute__((section(".model"), aligned(16))) const unsigned char kws_model[] = {\n')
    for i in range(0, len(data), 16):
        f.write(",".join(str(b) for b in data[i:i + 16]) + ",\n")
    f.write("};\n")
PY


# The sets: CMSIS-NN and the reference kernels for the Cortex-M4F, and CMSIS-NN for the
# Cortex-M0+ (ARMv6-M: its kernels' plain-C paths; the mps2-an386's M4 runs the code as it is).
for set in cmsis_nn reference cmsis_nn_m0plus; do
  if [ "$set" = cmsis_nn_m0plus ]; then arch=("${m0plus[@]}"); else arch=("${m4[@]}"); fi
  objdir="$out/obj-$set"
  mkdir -p "$objdir"
  list="$out/sources-$set.txt"
  : > "$list"
  for f in "${core[@]}"; do echo "-Os $f" >> "$list"; done
  for k in "${kernels_common[@]}"; do echo "-O2 $T/tensorflow/lite/micro/kernels/$k.cc" >> "$list"; done
  if [ "$set" != reference ]; then
    for k in "${kernels_opt[@]}"; do echo "-O2 $T/tensorflow/lite/micro/kernels/cmsis_nn/$k.cc" >> "$list"; done
    find "$NN/Source" -name '*.c' ! -name '*_f16.c' ! -name '*_f32.c' ! -name 'arm_nntables_flt.c' \
      | sort | sed 's/^/-O2 /' >> "$list"
    extra=(-DCMSIS_NN)
  else
    for k in "${kernels_opt[@]}"; do echo "-O2 $T/tensorflow/lite/micro/kernels/$k.cc" >> "$list"; done
    extra=()
  fi
  echo "-Os $here/main.cc" >> "$list"
  echo "-Os $here/startup.c" >> "$list"
  echo "-Os $out/model.c" >> "$list"
  # Each line: optimization level, source.
  common_q="$(printf '%q ' "${arch[@]}" "${common[@]}")"
  cxx_q="$(printf '%q ' "${cxx[@]}")"
  extra_q=""
  [ "${#extra[@]}" -eq 0 ] || extra_q="$(printf '%q ' "${extra[@]}")"
  xargs -P "$jobs" -L 1 bash -c "
    set -e
    opt=\"\$0\"; src=\"\$1\"
    obj=\"$objdir/\$(echo \"\${src#$deps/}\" | tr '/' '_').o\"
    [ \"\$obj\" -nt \"\$src\" ] && exit 0
    case \"\$src\" in
      *.c) arm-none-eabi-gcc -std=c17 $common_q \$opt $extra_q -c \"\$src\" -o \"\$obj\" ;;
      *) arm-none-eabi-g++ $cxx_q $common_q \$opt $extra_q -c \"\$src\" -o \"\$obj\" ;;
    esac" < "$list"
  arm-none-eabi-g++ "${arch[@]}" -nostartfiles --specs=nano.specs --specs=nosys.specs \
    -Wl,--gc-sections -Wl,-T,"$here/mps2_an386.ld" -Wl,-Map,"$out/tflm-$set.map" \
    -o "$out/tflm-$set.elf" "$objdir"/*.o
  echo "built $out/tflm-$set.elf"
done
