/* setjmp.h for Lua on wasm32-wasip2 (Debian's wasi-libc has none).
 *
 * Compiled with `-mllvm -wasm-enable-sjlj`, LLVM lowers setjmp/longjmp to
 * calls of __wasm_setjmp / __wasm_setjmp_test / __wasm_longjmp and wasm
 * exception handling; setjmp_rt.c implements those. The buffer layout is
 * the one setjmp_rt.c uses (struct jmp_buf_impl), with room to spare.
 */
#ifndef _SETJMP_H
#define _SETJMP_H

typedef struct __llmos_jmp_buf {
  void *__func_invocation_id;
  unsigned int __label;
  struct {
    void *__env;
    int __val;
  } __arg;
  unsigned long __reserved[4];
} jmp_buf[1];

int setjmp(jmp_buf) __attribute__((__returns_twice__));
_Noreturn void longjmp(jmp_buf, int);

#define _setjmp setjmp
#define _longjmp longjmp

#endif
