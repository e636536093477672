/*
 * QEMU TCG plugin (plugin API v1, as loaded by Debian's QEMU 7.2) that counts executed guest
 * instructions. QEMU does not model cycles, so instruction counts are our cost measure.
 *
 * Debian ships no qemu-plugin.h, so the few v1 entry points used are declared here.
 *
 * Arguments (-plugin insn-count.so,marker=0xADDR,out=PATH):
 *   marker=ADDR  address of a marker function; every time it executes, the running count is
 *                written as one line "mark <count>" (the firmware logs which region each mark closes)
 *   out=PATH     where the lines go (default: stderr); the total is written at exit as "total <count>"
 *   profile=PATH flat profile: at exit, one line "<address hex> <count>" per executed instruction
 *                address in the first 4 MiB (the board's flash), for `tools/profile.py` to sum by
 *                function
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                       void *ptr, uint64_t imm);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                                   enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

static uint64_t count; /* single vCPU board: one counter is enough */
static uint64_t marker = UINT64_MAX;
static FILE *out;
/* Per-instruction counters for profile=PATH: one per halfword of flash (Thumb instructions are
 * 2 or 4 bytes long and halfword aligned). */
#define PROFILE_SPAN (4u << 20)
static uint64_t *profile;
static FILE *profile_out;

static void on_marker(unsigned int vcpu, void *udata) {
    (void)vcpu; (void)udata;
    fprintf(out, "mark %" PRIu64 "\n", count);
    fflush(out);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &count, 1);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (profile && pc < PROFILE_SPAN) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &profile[pc >> 1], 1);
        }
        if (qemu_plugin_insn_vaddr(insn) == marker) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_marker, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
    }
}

static void on_exit_cb(qemu_plugin_id_t id, void *udata) {
    (void)id; (void)udata;
    fprintf(out, "total %" PRIu64 "\n", count);
    fflush(out);
    if (profile) {
        for (uint64_t i = 0; i < PROFILE_SPAN / 2; i++) {
            if (profile[i]) fprintf(profile_out, "%" PRIx64 " %" PRIu64 "\n", i << 1, profile[i]);
        }
        fclose(profile_out);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    out = stderr;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "marker=", 7) == 0) {
            marker = strtoull(argv[i] + 7, NULL, 0) & ~(uint64_t)1; /* drop the Thumb bit */
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            out = fopen(argv[i] + 4, "w");
            if (!out) { perror(argv[i] + 4); return -1; }
        } else if (strncmp(argv[i], "profile=", 8) == 0) {
            profile_out = fopen(argv[i] + 8, "w");
            profile = calloc(PROFILE_SPAN / 2, sizeof *profile);
            if (!profile_out || !profile) { perror(argv[i] + 8); return -1; }
        } else {
            fprintf(stderr, "insn-count: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
