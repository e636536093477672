/* Start-up for QEMU's mps2-an386: vector table, .data/.bss set-up, the FPU enabled, static
 * constructors, main, and semihosting for output and the exit code. */
#include <stdint.h>
#include <string.h>

extern uint32_t _stack_top, _stack_paint, _data_start, _data_end, _data_load, _bss_start, _bss_end;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
int main(void);
/* The C++ ABI names the module for static destructors (-nostartfiles drops crtbegin's). */
void *__dso_handle = 0;
void reset_handler(void);
void semihost_exit(int code);

static void fault_handler(void) { semihost_exit(3); }

__attribute__((section(".vectors"), used)) static const void *const vectors[16] = {
    &_stack_top, (void *)reset_handler, (void *)fault_handler, (void *)fault_handler,
    (void *)fault_handler, (void *)fault_handler, (void *)fault_handler,
};

static int semihost(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void semihost_write(const char *s) { semihost(0x04, s); }

void semihost_exit(int code) {
  /* SYS_EXIT with ADP_Stopped_ApplicationExit and the code (the extended form QEMU reads). */
  uint32_t block[2] = {0x20026, (uint32_t)code};
  semihost(0x20, block);
  for (;;) {
  }
}

/* The instruction-count plugin prints its running count each time this executes. */
__attribute__((noinline, used)) void edgeloop_mark(void) { __asm__ volatile("" ::: "memory"); }

/* Bytes of the painted stack region never written. */
uint32_t stack_untouched(void) {
  const uint32_t *p = (const uint32_t *)((uintptr_t)&_stack_top - (uintptr_t)&_stack_paint);
  uint32_t n = 0;
  while (p[n] == 0xC0FFEE11u) n++;
  return n * 4;
}

void reset_handler(void) {
  /* Full access to CP10/CP11 (the FPU). */
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
  __asm__ volatile("dsb\n isb");
  memcpy(&_data_start, &_data_load, (uintptr_t)&_data_end - (uintptr_t)&_data_start);
  memset(&_bss_start, 0, (uintptr_t)&_bss_end - (uintptr_t)&_bss_start);
  /* Paint the stack below this frame. */
  uint32_t *p = (uint32_t *)((uintptr_t)&_stack_top - (uintptr_t)&_stack_paint);
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  while (p < sp - 16) *p++ = 0xC0FFEE11u;
  for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) (*f)();
  semihost_exit(main());
}
