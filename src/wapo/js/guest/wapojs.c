/*
 * WapoJS: QuickJS-ng as a guest of the Wapo ocall ABI.
 *
 * quickjs.c is included (not linked) so that the allocation-free backtrace
 * below can read the engine's frame list after the host has stopped the guest
 * in the middle of an operation.  The engine itself is unpatched.
 *
 * Life of a run: the host instantiates the module with WASI argv
 *   wapojs [--memory-limit=N] [--stack-size=N] [--burst-ms=N] [--time-ms=N]
 *          [--module] [--name=FILE] -c CODE [scriptArgs...]
 * and calls wapo_poll() until it returns 1 (finished: output emitted) or 2
 * (failed: the error was reported first through the wapojs_report ocall).
 * Between polls the guest waits on a single host timer for its earliest JS
 * timer; it needs no ocall at all when nothing is pending.
 */
#include "quickjs.c"

#include <time.h>

/* ---- the ABI ---------------------------------------------------------- */

__attribute__((import_module("wapo"), import_name("ocall")))
extern int64_t wapo_ocall(int32_t task, int32_t func, int32_t p0, int32_t p1, int32_t p2, int32_t p3);
__attribute__((import_module("wapo"), import_name("ocall_fast_return")))
extern int64_t wapo_ocall_fast(int32_t task, int32_t func, int32_t p0, int32_t p1, int32_t p2, int32_t p3);

enum {
    OC_GET_RETURN = 0,
    OC_CLOSE = 101,
    OC_POLL_READ = 103,
    OC_AWAKE_WAKERS = 112,
    OC_CREATE_TIMER = 201,
    OC_RESET_TIMER = 203,
    OC_LOG = 220,
    OC_EMIT_OUTPUT = 243,
    OC_WAPOJS_REPORT = 1001, /* extension range: see docs/abi.md */
};

enum { ERR_PENDING = 11 };

enum {
    REPORT_UNCAUGHT = 1,
    REPORT_UNHANDLED_REJECTION = 2,
    REPORT_BURST_LIMIT = 3,
    REPORT_TIME_LIMIT = 4,
    REPORT_MEMORY_LIMIT = 5,
    REPORT_SETUP = 6,
};

enum { LOG_ERROR = 1, LOG_WARN = 2, LOG_INFO = 3, LOG_DEBUG = 4, LOG_TRACE = 5 };

#define TIMER_WAKER 1

static int32_t oc_fast(int32_t func, int32_t p0, int32_t p1, int32_t p2, int32_t p3, int32_t *value)
{
    int64_t r = wapo_ocall_fast(0, func, p0, p1, p2, p3);
    if (value)
        *value = (int32_t)(uint32_t)r;
    return (int32_t)(r >> 32) ? (int32_t)(uint32_t)r : 0;
}

static void host_log(int level, const char *msg, size_t len)
{
    oc_fast(OC_LOG, level, (int32_t)(uintptr_t)msg, (int32_t)len, 0, NULL);
}

static void host_report(int kind, const char *msg, size_t len)
{
    oc_fast(OC_WAPOJS_REPORT, kind, (int32_t)(uintptr_t)msg, (int32_t)len, 0, NULL);
}

/* ---- run state -------------------------------------------------------- */

typedef struct {
    int64_t id;
    double deadline;  /* ms, monotonic */
    double interval;  /* ms; < 0 for a one-shot timer */
    JSValue func;
    int argc;
    JSValue *argv;
} Timer;

static struct {
    JSRuntime *rt;
    JSContext *ctx;
    bool started;
    bool finished;
    size_t memory_limit;
    size_t stack_size;
    double burst_ms;
    double time_ms;
    double run_start;
    double poll_start;
    int stop_reason;  /* REPORT_BURST_LIMIT / REPORT_TIME_LIMIT when the interrupt handler fired */
    bool is_module;
    const char *name;
    const char *code;
    int script_argc;
    char **script_argv;
    Timer *timers;
    int n_timers, cap_timers;
    int64_t next_timer_id;
    int32_t host_timer; /* resource id, or -1 */
    JSValue *rejections;  /* unhandled rejected promises */
    int n_rejections, cap_rejections;
} S = { .host_timer = -1, .next_timer_id = 1, .burst_ms = 1000, .time_ms = 0 };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- backtrace without allocation ------------------------------------- */

static char backtrace_buf[4096];

/* Exported: callable by the host even after it interrupted the guest inside a
 * built-in, when allocating would not be safe. Returns a NUL-terminated string. */
__attribute__((export_name("wapojs_backtrace")))
const char *wapojs_backtrace(void)
{
    size_t pos = 0;
    backtrace_buf[0] = '\0';
    if (!S.rt)
        return backtrace_buf;
    int depth = 0;
    for (JSStackFrame *sf = S.rt->current_stack_frame; sf && depth < 32; sf = sf->prev_frame, depth++) {
        char name[64], file[128];
        const char *fname = "<anonymous>";
        const char *ffile = NULL;
        int line = -1, col = 0;
        if (JS_VALUE_GET_TAG(sf->cur_func) == JS_TAG_OBJECT) {
            JSObject *p = JS_VALUE_GET_OBJ(sf->cur_func);
            if (js_class_has_bytecode(p->class_id)) {
                JSFunctionBytecode *b = p->u.func.function_bytecode;
                if (b->func_name != JS_ATOM_NULL)
                    fname = JS_AtomGetStrRT(S.rt, name, sizeof(name), b->func_name);
                if (b->filename != JS_ATOM_NULL)
                    ffile = JS_AtomGetStrRT(S.rt, file, sizeof(file), b->filename);
                if (sf->cur_pc && b->pc2line_buf)
                    line = find_line_num(S.ctx, b, sf->cur_pc - b->byte_code_buf - 1, &col);
            } else {
                fname = "<native>";
            }
        }
        int n;
        if (ffile && line >= 0)
            n = snprintf(backtrace_buf + pos, sizeof(backtrace_buf) - pos, "    at %s (%s:%d:%d)\n",
                         fname[0] ? fname : "<anonymous>", ffile, line, col);
        else
            n = snprintf(backtrace_buf + pos, sizeof(backtrace_buf) - pos, "    at %s (native)\n",
                         fname[0] ? fname : "<anonymous>");
        if (n < 0 || (size_t)n >= sizeof(backtrace_buf) - pos)
            break;
        pos += n;
    }
    return backtrace_buf;
}

/* ---- interrupt handler: the soft burst / time limits ------------------ */

static int interrupt_handler(JSRuntime *rt, void *opaque)
{
    (void)rt; (void)opaque;
    double t = now_ms();
    if (S.burst_ms > 0 && t - S.poll_start > S.burst_ms) {
        S.stop_reason = REPORT_BURST_LIMIT;
        return 1;
    }
    if (S.time_ms > 0 && t - S.run_start > S.time_ms) {
        S.stop_reason = REPORT_TIME_LIMIT;
        return 1;
    }
    return 0;
}

/* ---- value formatting -------------------------------------------------- */

typedef struct { char *buf; size_t len, cap; } Buf;

static void buf_put(Buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb)
            return;
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void buf_put_value_str(JSContext *ctx, Buf *b, JSValueConst v)
{
    size_t n;
    const char *s = JS_ToCStringLen(ctx, &n, v);
    if (s) {
        buf_put(b, s, n);
        JS_FreeCString(ctx, s);
    } else {
        JS_FreeValue(ctx, JS_GetException(ctx));
        buf_put(b, "<unprintable>", 13);
    }
}

/* An error as "Name: message\n    at ..." (the engine's stack already has the frames). */
static void buf_put_error(JSContext *ctx, Buf *b, JSValueConst err)
{
    buf_put_value_str(ctx, b, err);
    if (JS_IsObject(err)) {
        JSValue stack = JS_GetPropertyStr(ctx, err, "stack");
        if (JS_IsString(stack)) {
            buf_put(b, "\n", 1);
            buf_put_value_str(ctx, b, stack);
            while (b->len && b->buf[b->len - 1] == '\n')
                b->buf[--b->len] = '\0';
        } else if (JS_IsException(stack)) {
            JS_FreeValue(ctx, JS_GetException(ctx));
        }
        JS_FreeValue(ctx, stack);
    }
}

static void buf_put_inspect(JSContext *ctx, Buf *b, JSValueConst v)
{
    if (JS_IsString(v)) {
        buf_put_value_str(ctx, b, v);
        return;
    }
    if (JS_IsError(v)) {
        buf_put_error(ctx, b, v);
        return;
    }
    if (JS_IsObject(v) && !JS_IsFunction(ctx, v)) {
        JSValue json = JS_JSONStringify(ctx, v, JS_UNDEFINED, JS_UNDEFINED);
        if (JS_IsString(json)) {
            buf_put_value_str(ctx, b, json);
            JS_FreeValue(ctx, json);
            return;
        }
        if (JS_IsException(json))
            JS_FreeValue(ctx, JS_GetException(ctx));
        JS_FreeValue(ctx, json);
    }
    buf_put_value_str(ctx, b, v);
}

static void log_values(JSContext *ctx, int level, int argc, JSValueConst *argv)
{
    Buf b = {0};
    for (int i = 0; i < argc; i++) {
        if (i)
            buf_put(&b, " ", 1);
        buf_put_inspect(ctx, &b, argv[i]);
    }
    host_log(level, b.buf ? b.buf : "", b.len);
    free(b.buf);
}

/* ---- globals: console, print, timers ---------------------------------- */

static JSValue js_console_log(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic)
{
    (void)this_val;
    log_values(ctx, magic, argc, argv);
    return JS_UNDEFINED;
}

static void timer_free(JSContext *ctx, Timer *t)
{
    JS_FreeValue(ctx, t->func);
    for (int i = 0; i < t->argc; i++)
        JS_FreeValue(ctx, t->argv[i]);
    js_free(ctx, t->argv);
}

/* magic: 0 setTimeout, 1 setInterval, 2 setImmediate */
static JSValue js_set_timer(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic)
{
    (void)this_val;
    if (argc < 1 || !JS_IsFunction(ctx, argv[0]))
        return JS_ThrowTypeError(ctx, "the callback must be a function");
    double delay = 0;
    int first_arg = 1;
    if (magic != 2) {
        if (argc > 1 && JS_ToFloat64(ctx, &delay, argv[1]))
            return JS_EXCEPTION;
        if (!(delay >= 1))  /* NaN, negative and < 1 behave as 1 ms in browsers; keep 0 for immediacy */
            delay = 0;
        if (delay > 2147483647.0)
            delay = 1;  /* browsers treat overflowing delays as 1 ms */
        first_arg = 2;
    }
    if (S.n_timers == S.cap_timers) {
        int cap = S.cap_timers ? S.cap_timers * 2 : 16;
        Timer *nt = js_realloc(ctx, S.timers, cap * sizeof(Timer));
        if (!nt)
            return JS_EXCEPTION;
        S.timers = nt;
        S.cap_timers = cap;
    }
    int extra = argc > first_arg ? argc - first_arg : 0;
    JSValue *args = NULL;
    if (extra) {
        args = js_malloc(ctx, extra * sizeof(JSValue));
        if (!args)
            return JS_EXCEPTION;
        for (int i = 0; i < extra; i++)
            args[i] = JS_DupValue(ctx, argv[first_arg + i]);
    }
    Timer *t = &S.timers[S.n_timers++];
    t->id = S.next_timer_id++;
    t->deadline = now_ms() + delay;
    t->interval = magic == 1 ? (delay < 1 ? 1 : delay) : -1;
    t->func = JS_DupValue(ctx, argv[0]);
    t->argc = extra;
    t->argv = args;
    return JS_NewInt64(ctx, t->id);
}

static JSValue js_clear_timer(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    (void)this_val;
    int64_t id;
    if (argc < 1 || JS_IsUndefined(argv[0]) || JS_IsNull(argv[0]))
        return JS_UNDEFINED;
    if (JS_ToInt64(ctx, &id, argv[0]))
        return JS_EXCEPTION;
    for (int i = 0; i < S.n_timers; i++) {
        if (S.timers[i].id == id) {
            Timer t = S.timers[i];
            S.timers[i] = S.timers[--S.n_timers];
            timer_free(ctx, &t);
            break;
        }
    }
    return JS_UNDEFINED;
}

static const JSCFunctionListEntry console_funcs[] = {
    JS_CFUNC_MAGIC_DEF("log", 0, js_console_log, LOG_INFO),
    JS_CFUNC_MAGIC_DEF("info", 0, js_console_log, LOG_INFO),
    JS_CFUNC_MAGIC_DEF("warn", 0, js_console_log, LOG_WARN),
    JS_CFUNC_MAGIC_DEF("error", 0, js_console_log, LOG_ERROR),
    JS_CFUNC_MAGIC_DEF("debug", 0, js_console_log, LOG_DEBUG),
    JS_CFUNC_MAGIC_DEF("trace", 0, js_console_log, LOG_TRACE),
};

static const JSCFunctionListEntry global_funcs[] = {
    JS_CFUNC_MAGIC_DEF("print", 0, js_console_log, LOG_INFO),
    JS_CFUNC_MAGIC_DEF("setTimeout", 2, js_set_timer, 0),
    JS_CFUNC_MAGIC_DEF("setInterval", 2, js_set_timer, 1),
    JS_CFUNC_MAGIC_DEF("setImmediate", 1, js_set_timer, 2),
    JS_CFUNC_DEF("clearTimeout", 1, js_clear_timer),
    JS_CFUNC_DEF("clearInterval", 1, js_clear_timer),
    JS_CFUNC_DEF("clearImmediate", 1, js_clear_timer),
};

/* ---- unhandled rejections --------------------------------------------- */

static void rejection_tracker(JSContext *ctx, JSValueConst promise, JSValueConst reason,
                              bool is_handled, void *opaque)
{
    (void)reason; (void)opaque;
    if (is_handled) {
        for (int i = 0; i < S.n_rejections; i++) {
            if (JS_VALUE_GET_PTR(S.rejections[i]) == JS_VALUE_GET_PTR(promise)) {
                JS_FreeValue(ctx, S.rejections[i]);
                S.rejections[i] = S.rejections[--S.n_rejections];
                return;
            }
        }
        return;
    }
    if (S.n_rejections == S.cap_rejections) {
        int cap = S.cap_rejections ? S.cap_rejections * 2 : 8;
        JSValue *nr = realloc(S.rejections, cap * sizeof(JSValue));
        if (!nr)
            return;
        S.rejections = nr;
        S.cap_rejections = cap;
    }
    S.rejections[S.n_rejections++] = JS_DupValue(ctx, promise);
}

/* ---- failure ---------------------------------------------------------- */

static bool is_out_of_memory(JSContext *ctx, JSValueConst exc)
{
    if (!JS_IsError(exc))
        return false;
    bool oom = false;
    JSValue msg = JS_GetPropertyStr(ctx, exc, "message");
    const char *s = JS_ToCString(ctx, msg);
    if (s) {
        oom = strcmp(s, "out of memory") == 0;
        JS_FreeCString(ctx, s);
    } else {
        JS_FreeValue(ctx, JS_GetException(ctx));
    }
    JS_FreeValue(ctx, msg);
    return oom;
}

/* Report the pending exception as the run's failure. */
static void fail_with_exception(void)
{
    JSContext *ctx = S.ctx;
    JSValue exc = JS_GetException(ctx);
    int kind = REPORT_UNCAUGHT;
    Buf b = {0};
    if (S.stop_reason) {
        kind = S.stop_reason;
        /* the uncatchable "interrupted" error carries the stack where the run stopped */
        buf_put_error(ctx, &b, exc);
    } else if (is_out_of_memory(ctx, exc) ||
               (!JS_IsObject(exc) && S.rt->malloc_state.malloc_limit &&
                S.rt->malloc_state.malloc_size > S.rt->malloc_state.malloc_limit / 10 * 9)) {
        /* with the heap full, even the error object may not be allocated */
        kind = REPORT_MEMORY_LIMIT;
        if (!JS_IsObject(exc))
            buf_put(&b, "out of memory", 13);
        kind = REPORT_MEMORY_LIMIT;
        if (JS_IsObject(exc))
            buf_put_error(ctx, &b, exc);
    } else {
        buf_put_error(ctx, &b, exc);
    }
    JS_FreeValue(ctx, exc);
    host_report(kind, b.buf ? b.buf : "", b.len);
    free(b.buf);
    S.finished = true;
}

static bool fail_on_unhandled_rejection(void)
{
    if (S.n_rejections == 0)
        return false;
    JSContext *ctx = S.ctx;
    JSValue reason = JS_PromiseResult(ctx, S.rejections[0]);
    Buf b = {0};
    buf_put(&b, "Uncaught (in promise) ", 22);
    buf_put_inspect(ctx, &b, reason);
    JS_FreeValue(ctx, reason);
    host_report(REPORT_UNHANDLED_REJECTION, b.buf ? b.buf : "", b.len);
    free(b.buf);
    S.finished = true;
    return true;
}

/* ---- start ------------------------------------------------------------ */

static bool parse_args(int argc, char **argv)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--memory-limit=", 15))
            S.memory_limit = strtoull(a + 15, NULL, 10);
        else if (!strncmp(a, "--stack-size=", 13))
            S.stack_size = strtoull(a + 13, NULL, 10);
        else if (!strncmp(a, "--burst-ms=", 11))
            S.burst_ms = strtod(a + 11, NULL);
        else if (!strncmp(a, "--time-ms=", 10))
            S.time_ms = strtod(a + 10, NULL);
        else if (!strcmp(a, "--module"))
            S.is_module = true;
        else if (!strncmp(a, "--name=", 7))
            S.name = a + 7;
        else if (!strcmp(a, "-c") && i + 1 < argc) {
            S.code = argv[++i];
            i++;
            break;
        } else
            return false;
    }
    if (!S.code)
        return false;
    S.script_argc = argc - i;
    S.script_argv = argv + i;
    return true;
}

static bool install_globals(JSContext *ctx)
{
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue console = JS_NewObject(ctx);
    JS_SetPropertyFunctionList(ctx, console, console_funcs, countof(console_funcs));
    JS_SetPropertyStr(ctx, global, "console", console);
    JS_SetPropertyFunctionList(ctx, global, global_funcs, countof(global_funcs));
    JSValue args = JS_NewArray(ctx);
    for (int i = 0; i < S.script_argc; i++)
        JS_SetPropertyUint32(ctx, args, i, JS_NewString(ctx, S.script_argv[i]));
    JS_SetPropertyStr(ctx, global, "scriptArgs", args);
    JS_SetPropertyStr(ctx, global, "scriptOutput", JS_UNDEFINED);
    JS_FreeValue(ctx, global);
    return true;
}

static bool start(void)
{
    int argc = 0;
    char **argv = NULL;
    size_t n_args = 0, args_size = 0;
    if (__wasi_args_sizes_get(&n_args, &args_size) != 0)
        return false;
    argv = malloc((n_args + 1) * sizeof(char *));
    char *args_buf = malloc(args_size ? args_size : 1);
    if (!argv || !args_buf || __wasi_args_get((uint8_t **)argv, (uint8_t *)args_buf) != 0)
        return false;
    argc = (int)n_args;
    if (!parse_args(argc, argv)) {
        static const char usage[] = "wapojs: bad arguments: expected [options] -c CODE [args...]";
        host_report(REPORT_SETUP, usage, sizeof(usage) - 1);
        return false;
    }
    S.rt = JS_NewRuntime();
    if (!S.rt)
        return false;
    if (S.memory_limit)
        JS_SetMemoryLimit(S.rt, S.memory_limit);
    if (S.stack_size)
        JS_SetMaxStackSize(S.rt, S.stack_size);
    JS_SetInterruptHandler(S.rt, interrupt_handler, NULL);
    JS_SetHostPromiseRejectionTracker(S.rt, rejection_tracker, NULL);
    S.ctx = JS_NewContext(S.rt);
    if (!S.ctx)
        return false;
    return install_globals(S.ctx);
}

static bool eval_main(void)
{
    JSContext *ctx = S.ctx;
    int flags = S.is_module ? JS_EVAL_TYPE_MODULE : JS_EVAL_TYPE_GLOBAL;
    const char *name = S.name ? S.name : (S.is_module ? "<module>" : "<script>");
    JSValue r = JS_Eval(ctx, S.code, strlen(S.code), name, flags);
    if (JS_IsException(r)) {
        fail_with_exception();
        return false;
    }
    JS_FreeValue(ctx, r);
    return true;
}

/* ---- the event loop --------------------------------------------------- */

static bool run_jobs(void)
{
    JSContext *ctx1;
    for (;;) {
        int r = JS_ExecutePendingJob(S.rt, &ctx1);
        if (r == 0)
            return true;
        if (r < 0) {
            fail_with_exception();
            return false;
        }
    }
}

/* Run the timers that are due now (not the ones their callbacks add: those
 * wait for the next round, so the loop can yield). False on an uncaught error. */
static bool run_due_timers(bool *ran)
{
    double t = now_ms();
    int64_t last_id = S.next_timer_id;
    *ran = false;
    for (;;) {
        int due = -1;
        for (int i = 0; i < S.n_timers; i++) {
            if (S.timers[i].id < last_id && S.timers[i].deadline <= t &&
                (due < 0 || S.timers[i].deadline < S.timers[due].deadline))
                due = i;
        }
        if (due < 0)
            return true;
        Timer cur = S.timers[due];
        JSValue func = JS_DupValue(S.ctx, cur.func);
        if (cur.interval >= 0) {
            S.timers[due].deadline = t + cur.interval;
        } else {
            S.timers[due] = S.timers[--S.n_timers];
        }
        JSValue r = JS_Call(S.ctx, func, JS_UNDEFINED, cur.argc, (JSValueConst *)cur.argv);
        JS_FreeValue(S.ctx, func);
        if (cur.interval < 0)
            timer_free(S.ctx, &cur);
        *ran = true;
        if (JS_IsException(r)) {
            fail_with_exception();
            return false;
        }
        JS_FreeValue(S.ctx, r);
        if (!run_jobs())
            return false;
    }
}

/* Collect the woken wakers (EO call). WapoJS waits on one timer only, so it
 * needs no detail: an empty list encodes in one byte and is not fetched. */
static void drain_wakers(void)
{
    int64_t r = wapo_ocall(0, OC_AWAKE_WAKERS, 0, 0, 0, 0);
    if (r >> 32)
        return;
    int32_t len = (int32_t)(uint32_t)r;
    if (len <= 1)
        return;
    uint8_t *buf = malloc(len);
    if (buf) {
        wapo_ocall_fast(0, OC_GET_RETURN, (int32_t)(uintptr_t)buf, len, 0, 0);
        free(buf);
    }
}

/* Arm the host timer for the earliest JS timer; true if the guest must wait for it. */
static bool arm_host_timer(void)
{
    if (S.n_timers == 0)
        return false;
    double earliest = S.timers[0].deadline;
    for (int i = 1; i < S.n_timers; i++)
        if (S.timers[i].deadline < earliest)
            earliest = S.timers[i].deadline;
    double wait = earliest - now_ms();
    int32_t ms = wait <= 0 ? 0 : (int32_t)(wait + 0.999);
    int32_t err;
    if (S.host_timer < 0) {
        int32_t res;
        err = oc_fast(OC_CREATE_TIMER, ms, 0, 0, 0, &res);
        if (err)
            return false;
        S.host_timer = res;
    } else {
        err = oc_fast(OC_RESET_TIMER, S.host_timer, ms, 0, 0, NULL);
        if (err)
            return false;
    }
    /* register our waker; Ok(0) means the timer already fired */
    int32_t n;
    err = oc_fast(OC_POLL_READ, TIMER_WAKER, S.host_timer, 0, 0, &n);
    return true;
}

static void emit_output(void)
{
    JSContext *ctx = S.ctx;
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue out = JS_GetPropertyStr(ctx, global, "scriptOutput");
    JS_FreeValue(ctx, global);
    if (JS_IsUndefined(out) || JS_IsNull(out) || JS_IsException(out)) {
        if (JS_IsException(out))
            JS_FreeValue(ctx, JS_GetException(ctx));
        return;
    }
    size_t len;
    uint8_t *bytes = JS_GetUint8Array(ctx, &len, out);
    if (!bytes) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        bytes = JS_GetArrayBuffer(ctx, &len, out);
        if (!bytes)
            JS_FreeValue(ctx, JS_GetException(ctx));
    }
    if (bytes) {
        oc_fast(OC_EMIT_OUTPUT, (int32_t)(uintptr_t)bytes, (int32_t)len, 0, 0, NULL);
    } else {
        const char *s = JS_ToCStringLen(ctx, &len, out);
        if (s) {
            oc_fast(OC_EMIT_OUTPUT, (int32_t)(uintptr_t)s, (int32_t)len, 0, 0, NULL);
            JS_FreeCString(ctx, s);
        } else {
            fail_with_exception();
        }
    }
    JS_FreeValue(ctx, out);
}

/* 0: pending; 1: finished; 2: failed (reported through OC_WAPOJS_REPORT). */
__attribute__((export_name("wapo_poll")))
int32_t wapo_poll(void)
{
    S.poll_start = now_ms();
    if (S.finished)
        return 2;
    if (!S.started) {
        S.started = true;
        S.run_start = S.poll_start;
        if (!start()) {
            static const char msg[] = "wapojs: could not create the JS runtime";
            host_report(REPORT_SETUP, msg, sizeof(msg) - 1);
            S.finished = true;
            return 2;
        }
        if (!eval_main())
            return 2;
    } else if (S.host_timer >= 0) {
        drain_wakers();
    }
    if (!run_jobs())
        return 2;
    for (;;) {
        bool ran;
        if (!run_due_timers(&ran))
            return 2;
        if (fail_on_unhandled_rejection())
            return 2;
        double spent = now_ms() - S.poll_start;
        if (!ran || spent > 50 || (S.burst_ms > 0 && spent > S.burst_ms / 4))
            break;  /* yield to the host now and then, even with zero-delay timers */
    }
    if (arm_host_timer())
        return 0;
    emit_output();
    if (S.finished)
        return 2;
    S.finished = true;
    return 1;
}
