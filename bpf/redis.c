/* Redis through gopkg.in/redis.v5: one CLIENT span per command and per pipeline (entry + RET:
 * 2 hits).
 *
 * (*baseClient).defaultProcess(c, cmd Cmder) error: c RAX, cmd RBX:RCX; every command of a
 * Client goes through it (retries on another connection included). Every command type
 * embeds baseCmd first: its _args []interface{} holds the command's name, then its
 * arguments (their values are never read).
 * (*baseClient).pipelineProcessCmds and txPipelineProcessCmds(c, cn *pool.Conn, cmds
 * []Cmder) (retry bool, err error): c RAX, cn RBX, cmds RCX:RDI:RSI; return err RBX:RCX.
 * A pipeline's span names its first PIPELINE_COMMANDS commands.
 * Both return the first error: "redis: nil" (a RedisError) is the reply to a key that does
 * not exist, not a failure.
 */

#include "goabi.h"
#include "counters.h"
#include "span.h"
#include "conn.h"
#include "db_call.h"

BPF_HASH(redis_calls, struct go_key, struct span_record, MAX_INFLIGHT);  /* by g */

#define OP_PIPELINE (BYTE_AT('P', 0) | BYTE_AT('I', 1) | BYTE_AT('P', 2) | BYTE_AT('E', 3) | \
                     BYTE_AT('L', 4) | BYTE_AT('I', 5) | BYTE_AT('N', 6) | BYTE_AT('E', 7))
#define OP_MULTI (BYTE_AT('M', 0) | BYTE_AT('U', 1) | BYTE_AT('L', 2) | BYTE_AT('T', 3) | \
                  BYTE_AT('I', 4))
#define REDIS_NIL_LEN 10  /* "redis: nil" */

/* A pipeline's commands, in the record's path field: where each one's name is (the string the
 * client named it by, which gotrace reads) and its arguments' number. */
struct redis_command_ref {
    __u64 name;
    __u32 name_len;
    __u32 arg_count;
};
#define PIPELINE_COMMANDS (SPAN_PATH_LEN / sizeof(struct redis_command_ref))
_Static_assert(PIPELINE_COMMANDS * sizeof(struct redis_command_ref) == SPAN_PATH_LEN,
               "a pipeline's command references fill the path field");

/* The command whose Cmder data word is cmd: its name's string header and argument count. */
static __always_inline struct redis_command_ref redis_command_of(__u64 cmd) {
    struct redis_command_ref ref = {};
    struct go_slice args = {};
    if (!cmd || bpf_probe_read_user(&args, sizeof(args),
                                    (void *)(cmd + OFF_gopkg_in_redis_v5_baseCmd__args)) ||
        args.len <= 0)
        return ref;
    ref.arg_count = (__u32)(args.len - 1);
    struct go_iface name = {};  /* an interface{} holding a string: data -> its header */
    struct go_string header = {};
    if (!bpf_probe_read_user(&name, sizeof(name), (void *)args.ptr) && name.data &&
        !bpf_probe_read_user(&header, sizeof(header), (void *)name.data)) {
        ref.name = header.ptr;
        ref.name_len = (__u32)header.len;
    }
    return ref;
}

static __always_inline struct span_record *redis_begin(__u64 g, __u64 client) {
    struct span_record *rec = new_record(SPAN_KIND_REDIS_CLIENT, g);
    if (!rec)
        return 0;
    __u64 options = read_u64(client + OFF_gopkg_in_redis_v5_baseClient_opt);
    if (options) {
        READ_GO_STRING(rec->host, options + OFF_gopkg_in_redis_v5_Options_Addr);
        db_call_of(rec)->source.len = (__s64)read_u64(options + OFF_gopkg_in_redis_v5_Options_DB);
        db_call_of(rec)->source_kind = DB_SOURCE_INDEX;
    }
    return rec;
}

static __always_inline void redis_keep(struct span_record *rec, __u64 g) {
    begin_span(rec, g);
    struct go_key by_g = go_key(g);
    if (redis_calls.update(&by_g, rec) != 0)
        count_drop(DROP_INFLIGHT_FULL);
}

int redis_command(struct pt_regs *ctx) {
    count_hit(PROBE_REDIS_COMMAND);
    __u64 g = GO_G(ctx);
    struct span_record *rec = redis_begin(g, GO_ARG1(ctx));
    if (!rec)
        return 0;
    struct redis_command_ref command = redis_command_of(GO_ARG3(ctx));
    db_call_of(rec)->arg_count = command.arg_count;
    struct go_string name = {.ptr = command.name, .len = command.name_len};
    COPY_GO_STRING(rec->method, name);
    redis_keep(rec, g);
    return 0;
}

static __always_inline int redis_pipeline(struct pt_regs *ctx, __u64 operation) {
    __u64 g = GO_G(ctx);
    struct span_record *rec = redis_begin(g, GO_ARG1(ctx));
    if (!rec)
        return 0;
    db_set_operation(rec, operation);
    __u64 cmds = GO_ARG3(ctx);
    __s64 count = (__s64)GO_ARG4(ctx);
    db_call_of(rec)->batch_size = (__u32)count;
    struct redis_command_ref refs[PIPELINE_COMMANDS] = {};
#pragma unroll
    for (int i = 0; i < PIPELINE_COMMANDS; i++) {
        if (i < count)
            refs[i] = redis_command_of(read_u64(cmds + i * sizeof(struct go_iface) + 8));
    }
    __builtin_memcpy(rec->path, refs, sizeof(refs));
    if (GO_ARG2(ctx))
        read_conn(rec, GO_ARG2(ctx) + OFF_gopkg_in_redis_v5_internal_pool_Conn_netConn);
    redis_keep(rec, g);
    return 0;
}

int redis_pipeline_begins(struct pt_regs *ctx) {
    count_hit(PROBE_REDIS_PIPELINE_BEGINS);
    return redis_pipeline(ctx, OP_PIPELINE);
}

int redis_transaction_begins(struct pt_regs *ctx) {
    count_hit(PROBE_REDIS_TRANSACTION_BEGINS);
    return redis_pipeline(ctx, OP_MULTI);
}

/* Whether the error (itab, data) is redis.Nil: a RedisError (a string type, which an
 * interface holds by pointer) reading "redis: nil". */
static __always_inline int redis_nil(__u64 itab, __u64 data) {
    if (itab_type(itab) != TYPEHASH_gopkg_in_redis_v5_internal_RedisError || !data)
        return 0;
    struct go_string s = {};
    char text[REDIS_NIL_LEN] = {};
    if (bpf_probe_read_user(&s, sizeof(s), (void *)data) || s.len != REDIS_NIL_LEN ||
        bpf_probe_read_user(text, sizeof(text), (void *)s.ptr))
        return 0;
    return text[0] == 'r' && text[1] == 'e' && text[2] == 'd' && text[3] == 'i' &&
           text[4] == 's' && text[5] == ':' && text[6] == ' ' && text[7] == 'n' &&
           text[8] == 'i' && text[9] == 'l';
}

static __always_inline void redis_end(struct pt_regs *ctx, __u64 error_itab,
                                      __u64 error_data) {
    struct go_key by_g = go_key(GO_G(ctx));
    struct span_record *rec = redis_calls.lookup(&by_g);
    if (!rec)
        return;
    rec->end_ns = bpf_ktime_get_ns();
    if (!redis_nil(error_itab, error_data)) {
        db_set_error(rec, error_itab, error_data);
        /* A reply error's text begins with its code (WRONGTYPE, ERR): gotrace keeps only
         * that word (gotrace/probes/redis.py). */
        if (error_data && itab_type(error_itab) == TYPEHASH_gopkg_in_redis_v5_internal_RedisError)
            READ_GO_STRING(rec->query, error_data);
    }
    emit(rec);
    redis_calls.delete(&by_g);
}

/* defaultProcess returned (error RAX:RBX). */
int redis_command_return(struct pt_regs *ctx) {
    count_hit(PROBE_REDIS_COMMAND_RETURN);
    redis_end(ctx, GO_ARG1(ctx), GO_ARG2(ctx));
    return 0;
}

/* A pipeline returned (retry AL, error RBX:RCX). */
int redis_pipeline_return(struct pt_regs *ctx) {
    count_hit(PROBE_REDIS_PIPELINE_RETURN);
    redis_end(ctx, GO_ARG2(ctx), GO_ARG3(ctx));
    return 0;
}
