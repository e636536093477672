// TensorFlow Lite Micro running the MLPerf Tiny keyword-spotting DS-CNN on QEMU's mps2-an386, for
// the side-by-side with edgeloop's firmware (`run.sh`). Each call of `edgeloop_mark` makes the
// instruction-count plugin print its running count: the differences are the regions below.
#include <stddef.h>
#include <stdint.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" {
void edgeloop_mark(void);
void semihost_write(const char* s);
uint32_t stack_untouched(void);
extern const unsigned char kws_model[];
}

namespace {

constexpr size_t kArenaBytes = 64 * 1024;
alignas(16) uint8_t arena[kArenaBytes];

void put(const char* key, long value) {
  char buf[64];
  size_t n = 0;
  while (key[n] != 0 && n < 40) {
    buf[n] = key[n];
    n++;
  }
  buf[n++] = ' ';
  char digits[16];
  size_t d = 0;
  bool neg = value < 0;
  unsigned long v = neg ? static_cast<unsigned long>(-value) : static_cast<unsigned long>(value);
  do {
    digits[d++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  if (neg) buf[n++] = '-';
  while (d > 0) buf[n++] = digits[--d];
  buf[n++] = '\n';
  buf[n] = 0;
  semihost_write(buf);
}

// Set for the second invoke: each op's invoke is followed by a mark, for per-op counts.
bool mark_ops = false;

// The op's own registration (as `AddConv2D()` etc. would register it) with its invoke followed
// by a mark when `mark_ops` is set (a load and a branch per op otherwise).
template <TFLMRegistration (*Register)()>
TFLMRegistration Marked() {
  static const TFLMRegistration inner = Register();
  TFLMRegistration r = inner;
  r.invoke = [](TfLiteContext* context, TfLiteNode* node) {
    TfLiteStatus status = inner.invoke(context, node);
    if (mark_ops) edgeloop_mark();
    return status;
  };
  return r;
}

}  // namespace

int main() {
  // Region 1: model checks, op resolution, tensor allocation (TFLM's start-up).
  edgeloop_mark();
  const tflite::Model* model = tflite::GetModel(kws_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) return 2;
  static tflite::MicroMutableOpResolver<6> resolver;
  resolver.AddConv2D(Marked<tflite::Register_CONV_2D>());
  resolver.AddDepthwiseConv2D(Marked<tflite::Register_DEPTHWISE_CONV_2D>());
  resolver.AddAveragePool2D(Marked<tflite::Register_AVERAGE_POOL_2D>());
  resolver.AddReshape(Marked<tflite::Register_RESHAPE>());
  resolver.AddFullyConnected(Marked<tflite::Register_FULLY_CONNECTED>());
  resolver.AddSoftmax(Marked<tflite::Register_SOFTMAX>());
  static tflite::MicroInterpreter interpreter(model, resolver, arena, kArenaBytes);
  if (interpreter.AllocateTensors() != kTfLiteOk) return 4;
  edgeloop_mark();

  TfLiteTensor* input = interpreter.input(0);
  if (input == nullptr || input->type != kTfLiteInt8) return 5;
  // A fixed pseudo-random input (the instruction count does not depend on the values).
  uint32_t s = 0x2545F491u;
  for (size_t i = 0; i < input->bytes; i++) {
    s = s * 1664525u + 1013904223u;
    input->data.int8[i] = static_cast<int8_t>(s >> 24);
  }
  // Region 2: one invoke. Then a second invoke with a mark after each op (per-op counts).
  edgeloop_mark();
  if (interpreter.Invoke() != kTfLiteOk) return 6;
  edgeloop_mark();
  mark_ops = true;
  if (interpreter.Invoke() != kTfLiteOk) return 7;
  mark_ops = false;

  TfLiteTensor* output = interpreter.output(0);
  if (output == nullptr || output->type != kTfLiteInt8) return 8;
  put("ops", static_cast<long>(model->subgraphs()->Get(0)->operators()->size()));
  put("input_bytes", static_cast<long>(input->bytes));
  put("output_bytes", static_cast<long>(output->bytes));
  long sum = 0;
  for (size_t i = 0; i < output->bytes; i++) sum += output->data.int8[i];
  put("output_sum", sum);
  put("arena_used_bytes", static_cast<long>(interpreter.arena_used_bytes()));
  put("stack_untouched_bytes", static_cast<long>(stack_untouched()));
  return 0;
}
