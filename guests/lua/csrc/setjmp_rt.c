/* The setjmp/longjmp runtime for C compiled with `-mllvm -wasm-enable-sjlj`
 * (wasm exception handling, exnref encoding), as wasi-libc's libsetjmp
 * provides it (libc-top-half/musl/src/setjmp/wasm32/rt.c); Debian's
 * wasi-libc predates it and Rust's self-contained wasi-libc does not ship it.
 *
 * setjmp records (function invocation id, label) in the jmp_buf; longjmp
 * throws the __c_longjmp tag carrying a pointer to (env, val); the code LLVM
 * generated around each setjmp call site catches it and compares ids.
 */
#include <stddef.h>
#include <stdint.h>

struct jmp_buf_impl {
  void *func_invocation_id;
  uint32_t label;
  struct arg {
    void *env;
    int val;
  } arg;
};

/* The exception tag LLVM's lowering throws and catches (one i32: a pointer
 * to struct arg). Recent LLVM no longer defines it in every object. */
__asm__(".globl __c_longjmp\n"
        ".tagtype __c_longjmp i32\n"
        "__c_longjmp:\n");

void __wasm_setjmp(void *env, uint32_t label, void *func_invocation_id) {
  struct jmp_buf_impl *jb = env;
  if (label == 0 || func_invocation_id == NULL) {
    __builtin_trap();
  }
  jb->func_invocation_id = func_invocation_id;
  jb->label = label;
}

uint32_t __wasm_setjmp_test(void *env, void *func_invocation_id) {
  struct jmp_buf_impl *jb = env;
  if (jb->label == 0 || func_invocation_id == NULL) {
    __builtin_trap();
  }
  return jb->func_invocation_id == func_invocation_id ? jb->label : 0;
}

/* Called before every throw, while the thrower's stack is intact (the Lua
 * guest records the artifact's frames there for a memory error, which Lua
 * raises without calling a message handler). Set by the guest. */
void (*llmos_throw_hook)(void) = 0;

void __wasm_longjmp(void *env, int val) {
  struct jmp_buf_impl *jb = env;
  if (llmos_throw_hook) {
    llmos_throw_hook();
  }
  struct arg *arg = &jb->arg;
  if (val == 0) {
    val = 1;
  }
  arg->env = env;
  arg->val = val;
  __builtin_wasm_throw(1, arg); /* 1: the C longjmp tag */
}
