/*
 * llmos: the Lua VM's countdown of calls and jumps (see
 * guests/lua/patches/countdown.patch), included into every Lua source file
 * by the Makefile (-include). The counter and the poll live in the guest
 * (src/lib.rs): when the count runs out, the poll resets it and, while an
 * artifact runs, installs a one-instruction count hook that checks the
 * run's budgets with the VM's state saved (so an error raised there has
 * its line and stack).
 */
#ifndef LLMOS_COUNTDOWN_H
#define LLMOS_COUNTDOWN_H

struct lua_State;
extern int llmos_lua_countdown;
void llmos_lua_poll(struct lua_State *L);

#define luai_countdown(L) \
  do { if (__builtin_expect(--llmos_lua_countdown <= 0, 0)) llmos_lua_poll(L); } while (0)

#endif
