/* The native line-protocol scanner: the fast path of `lakeflux.lineprotocol.parse`.
 *
 * One call scans a whole body without the GIL:
 *   1. validate UTF-8 and split records exactly as `records.py` does (a quoted string may run over
 *      newlines; such records, like every line this scanner is unsure about, are left to the exact
 *      parser as "leftovers");
 *   2. parse each single-line record of the common form (one space between sections, escapes of
 *      separators only, strings without backslashes, values in their plain spellings) and group the
 *      lines by shape: measurement, tag keys, field keys and field types, found by hash and compared
 *      by bytes;
 *   3. write each group's columns into one malloc'd block laid out as Arrow buffers, exported
 *      through the Arrow C Data Interface (one struct array per group, imported by pyarrow at once).
 * Anything unusual (a backslash before another byte, tabs, odd floats, numbers out of range, keys
 * repeated or named `time`) goes to the exact parser, which also writes every error message.
 *
 * Floats are converted only when the result is exactly what Python's float() gives: at most 19
 * significant digits, a mantissa up to 2^53 and a power of ten up to 22 (one correctly rounded IEEE
 * operation on exact operands). strtod is not used: it depends on the locale.
 *
 * Only the CPython API and the buffer protocol are used; the Arrow structs are declared here, as the
 * interface intends. Scratch memory lives per thread and is reused from body to body.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- Arrow C Data Interface (the ABI is the specification) ---------------------------------------- */
struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

/* Column kinds, shared with native.py. */
enum { K_TAG = 0, K_FLOAT = 1, K_INT = 2, K_UINT = 3, K_BOOL = 4, K_STRING = 5, K_TIME = 6 };

#define STRING_LIMIT 65536
#define MAX_KEYS 256 /* more keys in one line: the exact parser checks them */
#define ESCAPED 0x80000000u
#define CAPSULE_NAME "lakeflux.arrow_array"

/* ---- growable scratch ----------------------------------------------------------------------------- */
typedef struct {
    char *data;
    size_t size; /* bytes in use */
    size_t cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->size + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->size + extra) cap *= 2;
    char *data = realloc(b->data, cap);
    if (data == NULL) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

typedef struct {
    int64_t line_number;
    int64_t time;
    uint32_t start, end; /* the record without a trailing \r */
    uint32_t shape;
    uint32_t slot; /* index of its first value in the slots */
} Line;

typedef union {
    double f;
    int64_t i;
    uint64_t u;
    struct {
        uint32_t start;
        uint32_t len; /* ESCAPED bit: the span holds backslash escapes */
    } s;
} Value;

typedef struct {
    uint64_t hash;
    uint32_t key; /* index of its measurement span in `keys` (then tag keys, then field keys) */
    uint32_t type; /* index of its field types in `types` */
    uint32_t tags, fields;
    uint32_t count; /* lines */
    uint32_t group;  /* the group its lines go to (second pass) */
    uint32_t map_at; /* where its columns' positions in that group start, in the group's `column_of` */
    int ok;         /* keys distinct and none named `time` */
} Shape;

typedef struct {
    uint32_t start, len; /* ESCAPED bit in len */
} Span;

typedef struct {
    Buf lines, slots, leftovers, shapes, keys, types, order, table, measurements;
    size_t table_mask;
} Scratch;

static pthread_key_t scratch_key;

static void scratch_free(void *p) {
    Scratch *s = p;
    if (s == NULL) return;
    Buf *bufs[] = {&s->lines, &s->slots, &s->leftovers, &s->shapes, &s->keys, &s->types, &s->order, &s->table,
                   &s->measurements};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]->data);
    free(s);
}

static Scratch *scratch_get(void) {
    Scratch *s = pthread_getspecific(scratch_key);
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL || pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    s->lines.size = s->slots.size = s->leftovers.size = s->shapes.size = 0;
    s->keys.size = s->types.size = s->order.size = s->table.size = s->measurements.size = 0;
    return s;
}

/* ---- byte classes --------------------------------------------------------------------------------- */
enum { C_SPACE = 1, C_COMMA = 2, C_EQ = 4, C_BSL = 8, C_QUOTE = 16, C_TAB = 32 };
static uint8_t cls[256];

static void init_classes(void) {
    cls[' '] = C_SPACE;
    cls[','] = C_COMMA;
    cls['='] = C_EQ;
    cls['\\'] = C_BSL;
    cls['"'] = C_QUOTE;
    cls['\t'] = C_TAB;
}

/* ---- UTF-8 ---------------------------------------------------------------------------------------- */
/* Offset of the first byte that starts an invalid sequence, or -1 if the body is valid UTF-8. */
static Py_ssize_t utf8_invalid_at(const uint8_t *b, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, b + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t c = b[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else
            return (Py_ssize_t)i;
        if (i + 1 >= n || b[i + 1] < lo || b[i + 1] > hi) return (Py_ssize_t)i;
        for (size_t k = 2; k <= need; k++)
            if (i + k >= n || (b[i + k] & 0xC0) != 0x80) return (Py_ssize_t)i;
        i += need + 1;
    }
    return -1;
}

/* ---- record splitting (records.py's rule) --------------------------------------------------------- */
typedef struct {
    int quoted;
    int64_t equals, commas;
} QuoteState;

/* Scan one physical line [p, e): returns 1 if a quoted string is still open at its end. */
static int open_string_after(const uint8_t *b, size_t p, size_t e, QuoteState *st, int first) {
    int fields;
    if (first) {
        size_t q = p;
        while (q < e && (b[q] == ' ' || b[q] == '\t')) q++;
        if (q < e && b[q] == '#') return 0;
        fields = 0;
        st->quoted = 0;
        st->equals = st->commas = 0;
    } else {
        fields = 1;
    }
    for (size_t i = p; i < e; i++) {
        uint8_t c = b[i];
        if (c == '\\') {
            if (i + 1 < e) i++; /* an escaped byte never separates or quotes */
            continue;
        }
        if (c == ' ' || c == '\t') {
            fields = 1;
        } else if (!fields) {
            continue;
        } else if (c == '"') {
            if (st->equals > st->commas) st->quoted = !st->quoted;
        } else if (st->quoted) {
            continue;
        } else if (c == '=') {
            st->equals++;
        } else if (c == ',') {
            st->commas++;
        }
    }
    return st->quoted;
}

/* ---- values --------------------------------------------------------------------------------------- */
static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

typedef unsigned __int128 u128;

/* The double nearest to (q + a fraction that is nonzero when `sticky`) * 2^scale, ties to even;
 * q >= 2^55 so the 53 kept bits, the round bit and the sticky bit are all known exactly. */
static double round_to_double(u128 q, int sticky, int scale) {
    int bits = 128 - (q >> 64 ? __builtin_clzll((uint64_t)(q >> 64)) : 64 + __builtin_clzll((uint64_t)q));
    int drop = bits - 53;
    uint64_t kept = (uint64_t)(q >> drop);
    u128 rest = q & (((u128)1 << drop) - 1);
    u128 half = (u128)1 << (drop - 1);
    if (rest > half || (rest == half && (sticky || (kept & 1)))) kept++; /* a true tie stays even */
    uint64_t bits_of_power = (uint64_t)(1023 + drop + scale) << 52; /* 2^(drop + scale), a normal double */
    double power;
    memcpy(&power, &bits_of_power, 8);
    return (double)kept * power; /* kept <= 2^53 is exact, and so is a product by a power of two */
}

/* mantissa * 10^exp10 correctly rounded for mantissas beyond 2^53 (16 to 19 digits: full-precision floats
 * as most writers print them), in 128-bit integer arithmetic; 0 if out of this method's reach. */
static int wide_decimal(uint64_t mantissa, int exp10, double *out) {
    static const uint64_t POW10_INT[20] = {1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
        10000000ull, 100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
        10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
        100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull};
    if (exp10 >= 0) {
        if (exp10 > 19) return 0;
        u128 product = (u128)mantissa * POW10_INT[exp10]; /* < 2^128 */
        if (product < ((u128)1 << 55)) return 0;
        *out = round_to_double(product, 0, 0);
        return 1;
    }
    if (exp10 < -22) return 0;
    u128 divisor = exp10 >= -19 ? (u128)POW10_INT[-exp10] : (u128)POW10_INT[19] * POW10_INT[-exp10 - 19];
    int shift = 64 + __builtin_clzll(mantissa); /* the dividend uses all 128 bits: the most quotient bits */
    u128 scaled = (u128)mantissa << shift;
    u128 q = scaled / divisor;
    if (q < ((u128)1 << 55)) return 0;
    *out = round_to_double(q, scaled % divisor != 0, -shift);
    return 1;
}

/* The float syntax `-?d+(.d+)?([eE][+-]?d+)?` read from s (not past e): -1 if no such prefix, else *stop
 * is where it ends and the result is 1 with *out set when the value converts exactly (Clinger's fast
 * path, or 128-bit integer rounding for mantissas past 2^53), 0 when it does not. *integer: digits only. */
static int parse_float(const uint8_t *b, size_t s, size_t e, double *out, size_t *stop, int *integer) {
    size_t i = s;
    int negative = 0;
    if (i < e && b[i] == '-') {
        negative = 1;
        i++;
    }
    uint64_t mantissa = 0;
    int digits = 0, exp10 = 0;
    size_t from = i;
    while (i < e && b[i] == '0') i++; /* leading zeros add no digit */
    for (; i < e && (unsigned)(b[i] - '0') < 10; i++)
        if (++digits <= 19) mantissa = mantissa * 10 + (uint64_t)(b[i] - '0');
    if (i == from) return -1;
    *integer = 1;
    if (i < e && b[i] == '.') {
        from = ++i;
        if (mantissa == 0)
            for (; i < e && b[i] == '0'; i++) exp10--;
        for (; i < e && (unsigned)(b[i] - '0') < 10; i++) {
            exp10--;
            if (++digits <= 19) mantissa = mantissa * 10 + (uint64_t)(b[i] - '0');
        }
        if (i == from) return -1;
        *integer = 0;
    }
    if (i < e && (b[i] == 'e' || b[i] == 'E')) {
        size_t mark = i++;
        int exp_negative = 0;
        if (i < e && (b[i] == '+' || b[i] == '-')) exp_negative = b[i++] == '-';
        from = i;
        int64_t exponent = 0;
        for (; i < e && (unsigned)(b[i] - '0') < 10; i++)
            if (exponent < 1000000) exponent = exponent * 10 + (b[i] - '0');
        if (i == from) {
            *stop = mark; /* `1e` is no float: the caller sees a token that does not end here */
            return 0;
        }
        exp10 += (int)(exp_negative ? -exponent : exponent);
        *integer = 0;
    }
    *stop = i;
    if (digits > 19 || exp10 < -100000) return 0;
    double value;
    if (mantissa == 0) {
        value = 0.0;
    } else if (mantissa <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        value = exp10 >= 0 ? (double)mantissa * POW10[exp10] : (double)mantissa / POW10[-exp10];
    } else if (!wide_decimal(mantissa, exp10, &value)) {
        return 0;
    }
    *out = negative ? -value : value;
    return 1;
}

/* `-?d+` as an int64, at most 19 digits; 0 if not that or out of range. */
static int parse_signed(const uint8_t *b, size_t s, size_t e, int64_t *out) {
    size_t i = s;
    int negative = 0;
    if (i < e && b[i] == '-') {
        negative = 1;
        i++;
    }
    if (i == e || e - i > 19) return 0;
    uint64_t magnitude = 0;
    for (; i < e; i++) {
        unsigned digit = (unsigned)(b[i] - '0');
        if (digit > 9) return 0;
        magnitude = magnitude * 10 + digit;
    }
    if (negative) {
        if (magnitude > (1ull << 63)) return 0;
        *out = (int64_t)(0 - magnitude);
    } else {
        if (magnitude > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)magnitude;
    }
    return 1;
}

static int parse_unsigned(const uint8_t *b, size_t s, size_t e, uint64_t *out) {
    if (s == e || e - s > 20) return 0;
    uint64_t value = 0;
    for (size_t i = s; i < e; i++) {
        if (b[i] < '0' || b[i] > '9') return 0;
        if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, (uint64_t)(b[i] - '0'), &value))
            return 0;
    }
    *out = value;
    return 1;
}

static int parse_bool(const uint8_t *b, size_t s, size_t e, int64_t *out) {
    size_t n = e - s;
    const char *t = (const char *)b + s;
    if (n == 1) {
        if (t[0] == 't' || t[0] == 'T') return (*out = 1);
        if (t[0] == 'f' || t[0] == 'F') return (*out = 0, 1);
        return 0;
    }
    if (n == 4 && (!memcmp(t, "true", 4) || !memcmp(t, "True", 4) || !memcmp(t, "TRUE", 4))) return (*out = 1);
    if (n == 5 && (!memcmp(t, "false", 5) || !memcmp(t, "False", 5) || !memcmp(t, "FALSE", 5))) return (*out = 0, 1);
    return 0;
}

/* AUTO (multiplier 0) guesses the unit from the magnitude, as timestamps.py does. */
static int to_nanoseconds(int64_t value, int64_t multiplier, int64_t *out) {
    if (multiplier == 0) {
        uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
        multiplier = magnitude < 5000000000ull ? 1000000000 : magnitude < 5000000000000ull ? 1000000
                   : magnitude < 5000000000000000ull ? 1000 : 1;
    }
    return !__builtin_mul_overflow(value, multiplier, out);
}

/* Shapes compared byte for byte before a line's keys are hashed. Bodies interleave a few measurements
 * (cpu, mem, disk, ... line after line), so the previous line's shape alone rarely matches, while hashing
 * every key of every line was a fifth of the scan (the mixed benchmark body). A miss costs a length
 * compare per entry: different measurements almost always differ in some key's length or first bytes. */
#define RECENT_SHAPES 8

/* ---- one line ------------------------------------------------------------------------------------- */
typedef struct {
    const uint8_t *b;
    size_t n;
    int64_t multiplier, default_time;
    Scratch *s;
    uint32_t recent[RECENT_SHAPES]; /* the shapes of the latest lines, most recent first */
    uint32_t recent_count;
    int merge;           /* one group per measurement where its shapes agree (see build_groups) */
    int failed;          /* out of memory */
} Ctx;

/* Scan a name from *pos up to a byte in `stop`. A backslash escapes a space or a comma (keys and tag
 * values: also `=`); in a measurement it is a literal byte before anything but a backslash, a tab or a
 * quote. Returns 0 for any other backslash (the exact parser's business). */
static inline int scan_name(const uint8_t *b, size_t *pos, size_t end, uint8_t stop, int key, uint32_t *escaped) {
    size_t i = *pos;
    for (;;) {
        while (i < end && !(cls[b[i]] & stop)) i++;
        if (i < end && b[i] == '\\') {
            if (i + 1 >= end) return 0;
            uint8_t next = b[i + 1];
            if (next == ' ' || next == ',' || (key && next == '=')) {
                *escaped = ESCAPED;
                i += 2;
                continue;
            }
            if (key || (cls[next] & (C_BSL | C_TAB | C_QUOTE))) return 0;
            i++; /* a literal backslash in a measurement */
            continue;
        }
        break;
    }
    *pos = i;
    return 1;
}

#define PUSH(buf, type, value)                                                           \
    do {                                                                                 \
        if (buf_reserve(&(buf), sizeof(type)) < 0) { ctx->failed = 1; return 0; }        \
        *(type *)((buf).data + (buf).size) = (value);                                    \
        (buf).size += sizeof(type);                                                      \
    } while (0)

/* Parse the record [start, end) into a Line, its values and its keys (appended to the scratch).
 * Returns 0, with nothing kept, if the exact parser must take the line. */
static int parse_line(Ctx *ctx, size_t start, size_t end, Line *line, uint32_t *tags, uint32_t *fields) {
    const uint8_t *b = ctx->b;
    Scratch *s = ctx->s;
    size_t i = start;
    uint32_t escaped = 0;
    const uint8_t name_stop = C_SPACE | C_COMMA | C_BSL | C_QUOTE | C_TAB;
    const uint8_t key_stop = name_stop | C_EQ;
    if (!scan_name(b, &i, end, name_stop, 0, &escaped) || i == start || i >= end) return 0;
    PUSH(s->keys, Span, ((Span){(uint32_t)start, (uint32_t)(i - start) | escaped}));
    *tags = *fields = 0;
    while (b[i] == ',') {
        size_t key = ++i;
        escaped = 0;
        if (!scan_name(b, &i, end, key_stop, 1, &escaped) || i == key || i >= end || b[i] != '=') return 0;
        PUSH(s->keys, Span, ((Span){(uint32_t)key, (uint32_t)(i - key) | escaped}));
        size_t value = ++i;
        escaped = 0;
        if (!scan_name(b, &i, end, name_stop, 1, &escaped) || i == value || i >= end) return 0;
        Value v;
        v.s.start = (uint32_t)value;
        v.s.len = (uint32_t)(i - value) | escaped;
        PUSH(s->slots, Value, v);
        if (++*tags > MAX_KEYS) return 0;
    }
    if (b[i] != ' ') return 0;
    i++;
    for (;;) {
        size_t key = i;
        escaped = 0;
        if (!scan_name(b, &i, end, key_stop, 1, &escaped) || i == key || i >= end || b[i] != '=') return 0;
        PUSH(s->keys, Span, ((Span){(uint32_t)key, (uint32_t)(i - key) | escaped}));
        i++;
        Value v;
        uint8_t type;
        if (i < end && b[i] == '"') {
            size_t j = ++i;
            while (j < end && b[j] != '"' && b[j] != '\\') j++;
            if (j >= end || b[j] == '\\' || j - i > STRING_LIMIT) return 0;
            v.s.start = (uint32_t)i;
            v.s.len = (uint32_t)(j - i);
            type = K_STRING;
            i = j + 1;
        } else {
            /* Numbers in one pass: the float syntax ends at the token's end (a float), or just before a
             * closing `i` or `u` (an integer); anything else takes the general path below. */
            size_t token = i, stop = i;
            int integer = 0;
            int exact = parse_float(b, token, end, &v.f, &stop, &integer);
            if (exact >= 0 && (stop == end || b[stop] == ' ' || b[stop] == ',')) {
                if (!exact) return 0;
                type = K_FLOAT;
                i = stop;
            } else if (exact >= 0 && integer && stop < end && (b[stop] == 'i' || b[stop] == 'u') &&
                       (stop + 1 == end || b[stop + 1] == ' ' || b[stop + 1] == ',')) {
                type = b[stop] == 'i' ? K_INT : K_UINT;
                if (type == K_INT ? !parse_signed(b, token, stop, &v.i) : !parse_unsigned(b, token, stop, &v.u))
                    return 0;
                i = stop + 1;
            } else {
                while (i < end && !(cls[b[i]] & name_stop)) i++;
                if (i == token || (i < end && b[i] != ' ' && b[i] != ',')) return 0;
                uint8_t last = b[i - 1];
                if (last == 'i' || last == 'u') return 0; /* not an integer (the pass above saw it) */
                if (!parse_bool(b, token, i, &v.i)) return 0; /* nor a float: a boolean, or the exact parser's */
                type = K_BOOL;
            }
        }
        PUSH(s->slots, Value, v);
        PUSH(s->types, uint8_t, type);
        if (++*fields > MAX_KEYS) return 0;
        if (i >= end) {
            line->time = ctx->default_time;
            return 1;
        }
        if (b[i] == ',') {
            i++;
            continue;
        }
        if (b[i] != ' ') return 0;
        int64_t stamp;
        if (!parse_signed(b, i + 1, end, &stamp) || !to_nanoseconds(stamp, ctx->multiplier, &line->time)) return 0;
        return 1;
    }
}

/* ---- shapes --------------------------------------------------------------------------------------- */
static inline uint64_t mix(uint64_t h, uint64_t w) {
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static uint64_t hash_span(uint64_t h, const uint8_t *p, size_t len) {
    h = mix(h, len);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h, w);
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    return mix(h, w);
}

static int table_grow(Scratch *s, size_t entries) {
    size_t size = 64;
    while (size < entries * 2) size *= 2;
    s->table.size = 0;
    if (buf_reserve(&s->table, size * sizeof(uint32_t)) < 0) return -1;
    s->table.size = size * sizeof(uint32_t);
    s->table_mask = size - 1;
    uint32_t *slots = (uint32_t *)s->table.data;
    memset(slots, 0, size * sizeof(uint32_t));
    Shape *shapes = (Shape *)s->shapes.data;
    size_t count = s->shapes.size / sizeof(Shape);
    for (size_t k = 0; k < count; k++) {
        size_t at = shapes[k].hash & s->table_mask;
        while (slots[at]) at = (at + 1) & s->table_mask;
        slots[at] = (uint32_t)k + 1;
    }
    return 0;
}

static int same_keys(const uint8_t *b, const Span *x, const Span *y, size_t count) {
    for (size_t k = 0; k < count; k++) {
        if (x[k].len != y[k].len) return 0;
        if (memcmp(b + x[k].start, b + y[k].start, x[k].len & ~ESCAPED)) return 0;
    }
    return 1;
}

/* Move `shape` (at position `at` of the recent list, or not in it: at == recent_count) to the front. */
static inline uint32_t remember(Ctx *ctx, uint32_t at, uint32_t shape) {
    if (at == 0 && ctx->recent_count) return shape; /* the previous line's shape again: the usual case */
    if (at == ctx->recent_count && ctx->recent_count < RECENT_SHAPES) ctx->recent_count++;
    if (at >= ctx->recent_count) at = ctx->recent_count - 1;
    for (uint32_t k = at; k > 0; k--) ctx->recent[k] = ctx->recent[k - 1];
    ctx->recent[0] = shape;
    return shape;
}

/* The shape of the line whose keys and types were just appended; a new one if unseen. UINT32_MAX: no memory. */
static uint32_t shape_of(Ctx *ctx, size_t key_at, size_t type_at, uint32_t tags, uint32_t fields) {
    Scratch *s = ctx->s;
    const Span *keys = (const Span *)(s->keys.data + key_at);
    const uint8_t *types = (const uint8_t *)s->types.data + type_at;
    size_t nkeys = 1 + tags + fields;
    Shape *shapes = (Shape *)s->shapes.data;
    for (uint32_t r = 0; r < ctx->recent_count; r++) {
        Shape *seen = &shapes[ctx->recent[r]];
        if (seen->tags == tags && seen->fields == fields && !memcmp(s->types.data + seen->type, types, fields) &&
            same_keys(ctx->b, (const Span *)(s->keys.data) + seen->key, keys, nkeys)) {
            s->keys.size = key_at;
            s->types.size = type_at;
            seen->count++;
            return remember(ctx, r, ctx->recent[r]);
        }
    }
    uint64_t h = mix(tags, fields);
    for (size_t k = 0; k < nkeys; k++) h = hash_span(h, ctx->b + keys[k].start, keys[k].len & ~ESCAPED);
    h = hash_span(h, types, fields);
    size_t count = s->shapes.size / sizeof(Shape);
    if (s->table.size == 0 || count * 2 >= s->table_mask) {
        if (table_grow(s, count + 1) < 0) return UINT32_MAX;
    }
    uint32_t *slots = (uint32_t *)s->table.data;
    shapes = (Shape *)s->shapes.data;
    size_t at = h & s->table_mask;
    for (; slots[at]; at = (at + 1) & s->table_mask) {
        Shape *shape = &shapes[slots[at] - 1];
        if (shape->hash != h || shape->tags != tags || shape->fields != fields) continue;
        if (memcmp(s->types.data + shape->type, types, fields)) continue;
        if (!same_keys(ctx->b, (const Span *)(s->keys.data) + shape->key, keys, nkeys)) continue;
        s->keys.size = key_at; /* a known shape: forget this line's copy of its keys */
        s->types.size = type_at;
        shape->count++;
        return remember(ctx, ctx->recent_count, slots[at] - 1);
    }
    if (buf_reserve(&s->shapes, sizeof(Shape)) < 0) return UINT32_MAX;
    shapes = (Shape *)s->shapes.data;
    shapes[count] = (Shape){.hash = h, .key = (uint32_t)(key_at / sizeof(Span)), .type = (uint32_t)type_at,
                            .tags = tags, .fields = fields, .count = 1, .ok = 1};
    s->shapes.size += sizeof(Shape);
    slots[at] = (uint32_t)count + 1;
    return remember(ctx, ctx->recent_count, (uint32_t)count);
}

/* Keys of a shape must be distinct and none may be `time` (raw bytes compare like names: each name
 * has one spelling under the escapes this scanner accepts). */
static int plain_keys(const uint8_t *b, const Span *keys, size_t count) {
    for (size_t k = 0; k < count; k++) {
        uint32_t len = keys[k].len & ~ESCAPED;
        if (len == 4 && !memcmp(b + keys[k].start, "time", 4)) return 0;
        for (size_t j = 0; j < k; j++)
            if (keys[j].len == keys[k].len && !memcmp(b + keys[j].start, b + keys[k].start, len)) return 0;
    }
    return 1;
}

/* ---- the first pass ------------------------------------------------------------------------------- */
static int add_leftover(Ctx *ctx, int64_t line_number, size_t start, size_t end) {
    if (buf_reserve(&ctx->s->leftovers, 3 * sizeof(int64_t)) < 0) return -1;
    int64_t *at = (int64_t *)(ctx->s->leftovers.data + ctx->s->leftovers.size);
    at[0] = line_number;
    at[1] = (int64_t)start;
    at[2] = (int64_t)end;
    ctx->s->leftovers.size += 3 * sizeof(int64_t);
    return 0;
}

static int scan_records(Ctx *ctx) {
    const uint8_t *b = ctx->b;
    size_t n = ctx->n, pos = 0;
    int64_t line_number = 0;
    Scratch *s = ctx->s;
    for (;;) {
        size_t start = pos;
        const uint8_t *nl = memchr(b + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - b) : n;
        int64_t first_line = ++line_number;
        int multiline = 0;
        if (memchr(b + start, '"', end - start)) {
            QuoteState st;
            int open = open_string_after(b, start, end, &st, 1);
            while (open && end < n) { /* a newline follows: the record runs on */
                size_t next = end + 1;
                const uint8_t *nl2 = memchr(b + next, '\n', n - next);
                end = nl2 ? (size_t)(nl2 - b) : n;
                line_number++;
                multiline = 1;
                open = open_string_after(b, next, end, &st, 0);
            }
        }
        size_t raw_end = end;
        if (multiline) {
            if (add_leftover(ctx, first_line, start, raw_end) < 0) return -1;
        } else {
            if (end > start && b[end - 1] == '\r') end--;
            if (end > start && b[start] != '#') {
                size_t slot_at = s->slots.size, key_at = s->keys.size, type_at = s->types.size;
                Line line = {.line_number = first_line, .start = (uint32_t)start, .end = (uint32_t)end};
                uint32_t tags, fields;
                int ok = b[start] != ' ' && b[start] != '\t' && parse_line(ctx, start, end, &line, &tags, &fields);
                if (ctx->failed) return -1;
                if (ok) {
                    line.shape = shape_of(ctx, key_at, type_at, tags, fields);
                    if (line.shape == UINT32_MAX) return -1;
                    line.slot = (uint32_t)(slot_at / sizeof(Value));
                    if (buf_reserve(&s->lines, sizeof(Line)) < 0) return -1;
                    *(Line *)(s->lines.data + s->lines.size) = line;
                    s->lines.size += sizeof(Line);
                } else {
                    s->slots.size = slot_at;
                    s->keys.size = key_at;
                    s->types.size = type_at;
                    if (add_leftover(ctx, first_line, start, raw_end) < 0) return -1;
                }
            }
        }
        if (raw_end >= n) return 0;
        pos = raw_end + 1;
    }
}

/* ---- the second pass: Arrow buffers --------------------------------------------------------------- */
/* A group is one shape of line or, when merging, every shape of a measurement whose keys agree on their
 * kinds: its columns are the first shape's keys, then each later shape's new keys (shapes taken in order
 * of their first line), its rows the lines in line order, a key a line lacks null. That is the table the
 * assembler would build from the shapes' groups, without the concatenation and the reordering by line
 * number (a take of every column) that cost a third of the Python side of a parse on the mixed benchmark
 * body (its disk lines come in two shapes, some without two fields). A shape that disagrees with the
 * measurement's group on a key's kind keeps a group of its own, and so does every later shape of that
 * measurement: the assembler then checks each against the columns of exactly the shapes before it, so
 * its errors name the same column as without merging. */
#define MAX_COLUMNS (MAX_KEYS * 2)

typedef struct {
    uint32_t shape;   /* its first shape */
    uint32_t members; /* shapes in it */
    uint32_t first;   /* position of its first line in `order` */
    uint32_t count;   /* its lines */
    int closed;       /* a later shape of the measurement disagreed: no more shapes join */
    size_t columns;   /* value columns, time excluded */
    size_t base;      /* how many of them are the first shape's */
    Span *names;      /* each column's key */
    uint8_t *kinds;   /* each column's kind, then room for time's */
    size_t name_cap;
    uint16_t *column_of; /* per member, per value of its lines: the column it goes to */
    size_t map_size, map_cap;
    struct ArrowArray *array; /* malloc'd: a capsule owns it until pyarrow moves it out */
    int64_t *line_numbers;    /* rows, then 2 x rows record spans (start, end) */
} Group;

static void release_child(struct ArrowArray *array) { array->release = NULL; }

static void release_group(struct ArrowArray *array) {
    for (int64_t k = 0; k < array->n_children; k++)
        if (array->children[k]->release) array->children[k]->release(array->children[k]);
    free(array->private_data);
    array->release = NULL;
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

static size_t unescaped_length(const uint8_t *b, Value v) {
    size_t len = v.s.len & ~ESCAPED;
    if (!(v.s.len & ESCAPED)) return len;
    size_t out = 0;
    for (size_t i = 0; i < len; i++, out++)
        if (b[v.s.start + i] == '\\') i++; /* every backslash the scanner kept escapes the next byte */
    return out;
}

static uint8_t *copy_unescaped(uint8_t *to, const uint8_t *b, Value v) {
    size_t len = v.s.len & ~ESCAPED;
    const uint8_t *from = b + v.s.start;
    if (!(v.s.len & ESCAPED)) {
        memcpy(to, from, len);
        return to + len;
    }
    for (size_t i = 0; i < len; i++) {
        if (from[i] == '\\') i++;
        *to++ = from[i];
    }
    return to;
}

static uint8_t shape_kind(const Scratch *s, const Shape *shape, size_t value) {
    return value < shape->tags ? K_TAG : ((const uint8_t *)s->types.data)[shape->type + value - shape->tags];
}

static int same_span(const uint8_t *b, Span x, Span y) {
    return x.len == y.len && !memcmp(b + x.start, b + y.start, x.len & ~ESCAPED);
}

/* Add `shape` to `g` as its next member; 0 (g unchanged) if a key's kind disagrees with the group's or the
 * columns would be too many; -1 if out of memory. */
static int join_group(Ctx *ctx, Group *g, Shape *shape, uint32_t index) {
    const Scratch *s = ctx->s;
    const Span *keys = (const Span *)s->keys.data + shape->key + 1;
    size_t values = shape->tags + shape->fields;
    uint16_t map[MAX_COLUMNS];
    size_t columns = g->columns;
    for (size_t v = 0; v < values; v++) {
        uint8_t kind = shape_kind(s, shape, v);
        size_t c = 0;
        while (c < columns && !same_span(ctx->b, g->names[c], keys[v])) c++;
        if (c < columns && c < g->columns && g->kinds[c] != kind) return 0;
        if (c == columns) {
            if (columns == MAX_COLUMNS) return 0;
            if (columns == g->name_cap) {
                size_t cap = columns + values;
                Span *names = realloc(g->names, cap * sizeof(Span));
                if (names != NULL) g->names = names;
                uint8_t *grown = names != NULL ? realloc(g->kinds, cap + 1) : NULL;
                if (grown == NULL) return -1;
                g->kinds = grown;
                g->name_cap = cap;
            }
            g->names[columns] = keys[v];
            g->kinds[columns++] = kind;
        }
        map[v] = (uint16_t)c;
    }
    if (g->map_size + values > g->map_cap) {
        size_t cap = g->map_cap ? g->map_cap * 2 : 64;
        while (cap < g->map_size + values) cap *= 2;
        uint16_t *grown = realloc(g->column_of, cap * sizeof(uint16_t));
        if (grown == NULL) return -1;
        g->column_of = grown;
        g->map_cap = cap;
    }
    memcpy(g->column_of + g->map_size, map, values * sizeof(uint16_t));
    shape->map_at = (uint32_t)g->map_size;
    shape->group = index;
    g->map_size += values;
    g->columns = columns;
    g->members++;
    return 1;
}

/* Build one group's block and struct array; 0 on success. */
static int build_group(Ctx *ctx, Group *g) {
    Scratch *s = ctx->s;
    const uint8_t *b = ctx->b;
    const Shape *shapes = (const Shape *)s->shapes.data;
    const Line *lines = (const Line *)s->lines.data;
    const uint32_t *order = (const uint32_t *)s->order.data + g->first;
    const Value *slots = (const Value *)s->slots.data;
    size_t rows = g->count, values = g->columns, columns = values + 1;
    const uint8_t *kinds = g->kinds;
    g->kinds[values] = K_TIME;
    /* what each column holds: values present (fewer than rows: a validity bitmap) and string bytes */
    size_t present[MAX_COLUMNS + 1], data_size[MAX_COLUMNS + 1];
    memset(data_size, 0, columns * sizeof(size_t));
    if (g->members == 1) { /* one shape: every line has every column, in the group's order */
        for (size_t c = 0; c < columns; c++) present[c] = rows;
        for (size_t c = 0; c < values; c++)
            if (kinds[c] == K_TAG || kinds[c] == K_STRING)
                for (size_t r = 0; r < rows; r++) data_size[c] += unescaped_length(b, slots[lines[order[r]].slot + c]);
    } else {
        memset(present, 0, columns * sizeof(size_t));
        for (size_t r = 0; r < rows; r++) {
            const Line *line = &lines[order[r]];
            const Shape *shape = &shapes[line->shape];
            const uint16_t *column_of = g->column_of + shape->map_at;
            const Value *v = slots + line->slot;
            for (size_t k = 0, n = shape->tags + shape->fields; k < n; k++) {
                size_t c = column_of[k];
                present[c]++;
                if (kinds[c] == K_TAG || kinds[c] == K_STRING) data_size[c] += unescaped_length(b, v[k]);
            }
        }
        present[values] = rows;
    }
    size_t bitmap = (rows + 7) / 8;
    size_t header = align64(columns * sizeof(struct ArrowArray) + columns * sizeof(struct ArrowArray *) +
                            columns * 3 * sizeof(void *) + sizeof(void *));
    size_t total = header;
    for (size_t c = 0; c < columns; c++) {
        size_t k = kinds[c];
        if (k == K_TAG || k == K_STRING) {
            if (data_size[c] > INT32_MAX) return -1;
            total += align64((rows + 1) * sizeof(int32_t));
        } else {
            data_size[c] = k == K_BOOL ? bitmap : rows * 8;
        }
        total += align64(data_size[c] ? data_size[c] : 1);
        if (present[c] < rows) total += align64(bitmap ? bitmap : 1);
    }
    uint8_t *block = NULL;
    if (posix_memalign((void **)&block, 64, total) != 0) return -1;
    struct ArrowArray *children = (struct ArrowArray *)block;
    struct ArrowArray **child_ptrs = (struct ArrowArray **)(children + columns);
    const void **buffers = (const void **)(child_ptrs + columns);
    const void **parent_buffers = buffers + columns * 3;
    uint8_t *cursor = block + header;
    int32_t *offsets[MAX_COLUMNS + 1];
    uint8_t *data[MAX_COLUMNS + 1], *valid[MAX_COLUMNS + 1];
    for (size_t c = 0; c < columns; c++) {
        size_t k = kinds[c];
        int strings = k == K_TAG || k == K_STRING;
        offsets[c] = NULL;
        valid[c] = NULL;
        if (strings) {
            offsets[c] = (int32_t *)cursor;
            cursor += align64((rows + 1) * sizeof(int32_t));
            offsets[c][0] = 0;
        }
        data[c] = cursor;
        cursor += align64(data_size[c] ? data_size[c] : 1);
        if (present[c] < rows) {
            valid[c] = cursor;
            cursor += align64(bitmap ? bitmap : 1);
            memset(valid[c], 0, bitmap);
            if (!strings) memset(data[c], 0, data_size[c]); /* defined bytes under the nulls */
        } else if (k == K_BOOL) {
            memset(data[c], 0, data_size[c]);
        }
        const void **own = buffers + 3 * c;
        own[0] = valid[c];
        own[1] = strings ? (const void *)offsets[c] : data[c];
        own[2] = data[c];
        children[c] = (struct ArrowArray){.length = (int64_t)rows, .null_count = (int64_t)(rows - present[c]),
                                          .n_buffers = strings ? 3 : 2, .buffers = own, .release = release_child};
        child_ptrs[c] = &children[c];
    }
    /* fill, row by row */
    int64_t *numbers = g->line_numbers;
    int64_t *spans = numbers + rows;
    size_t string_at[MAX_COLUMNS + 1];
    memset(string_at, 0, columns * sizeof(size_t));
    for (size_t r = 0; r < rows; r++) {
        const Line *line = &lines[order[r]];
        const Shape *shape = &shapes[line->shape];
        const uint16_t *column_of = g->members == 1 ? NULL : g->column_of + shape->map_at;
        const Value *v = slots + line->slot;
        numbers[r] = line->line_number;
        spans[2 * r] = line->start;
        spans[2 * r + 1] = line->end;
        for (size_t k = 0, n = shape->tags + shape->fields; k < n; k++) {
            size_t c = column_of ? column_of[k] : k;
            if (valid[c]) valid[c][r >> 3] |= (uint8_t)(1u << (r & 7));
            switch (kinds[c]) {
            case K_TAG:
            case K_STRING: {
                uint8_t *to = copy_unescaped(data[c] + string_at[c], b, v[k]);
                string_at[c] = (size_t)(to - data[c]);
                offsets[c][r + 1] = (int32_t)string_at[c];
                break;
            }
            case K_BOOL:
                if (v[k].i) data[c][r >> 3] |= (uint8_t)(1u << (r & 7));
                break;
            default:
                memcpy(data[c] + 8 * r, &v[k], 8);
            }
        }
        memcpy(data[values] + 8 * r, &line->time, 8);
    }
    /* a null string's offsets: empty, where the previous value ended */
    for (size_t c = 0; c < values; c++)
        if (offsets[c] && valid[c])
            for (size_t r = 0; r < rows; r++)
                if (!(valid[c][r >> 3] & (1u << (r & 7)))) offsets[c][r + 1] = offsets[c][r];
    parent_buffers[0] = NULL;
    struct ArrowArray *array = malloc(sizeof *array);
    if (array == NULL) {
        free(block);
        return -1;
    }
    *array = (struct ArrowArray){.length = (int64_t)rows, .n_buffers = 1, .n_children = (int64_t)columns,
                                 .buffers = parent_buffers, .children = child_ptrs, .release = release_group,
                                 .private_data = block};
    g->array = array;
    return 0;
}

/* A new group holding `shape` alone (its index `index`); -1 if out of memory. */
static int start_group(Ctx *ctx, Group *g, Shape *shape, uint32_t k, uint32_t index) {
    g->shape = k;
    if (join_group(ctx, g, shape, index) != 1) return -1; /* a shape has at most MAX_COLUMNS distinct keys */
    g->base = g->columns;
    return 0;
}

/* Form the groups (merging a measurement's shapes: see above), order the lines by group (a counting
 * sort, line order kept within a group) and build every group. Shapes with keys repeated or named
 * `time` go to the exact parser; any line left to it turns merging off for the body, as the assembler
 * must then place its columns among the groups' in line order. */
static int build_groups(Ctx *ctx, Group **out, size_t *group_count, int64_t *line_count) {
    Scratch *s = ctx->s;
    const uint8_t *b = ctx->b;
    Shape *shapes = (Shape *)s->shapes.data;
    size_t nshapes = s->shapes.size / sizeof(Shape);
    const Line *lines = (const Line *)s->lines.data;
    size_t nlines = s->lines.size / sizeof(Line);
    const Span *keys = (const Span *)s->keys.data;
    size_t good = 0;
    for (size_t k = 0; k < nshapes; k++) {
        shapes[k].ok = plain_keys(b, keys + shapes[k].key + 1, shapes[k].tags + shapes[k].fields);
        good += shapes[k].ok;
    }
    if (good < nshapes) {
        for (size_t i = 0; i < nlines; i++) {
            const Line *line = &lines[i];
            if (shapes[line->shape].ok) continue;
            size_t raw_end = line->end < ctx->n && ctx->b[line->end] == '\r' ? line->end + 1 : line->end;
            if (add_leftover(ctx, line->line_number, line->start, raw_end) < 0) return -1;
        }
    }
    int merge = ctx->merge && s->leftovers.size == 0;
    Group *groups = calloc(good ? good : 1, sizeof(Group));
    if (groups == NULL) return -1;
    *out = groups;
    *group_count = 0;
    *line_count = 0;
    /* measurement -> its group, by hash (a body may hold thousands of measurements) */
    size_t mask = 0;
    uint32_t *by_name = NULL;
    if (merge) {
        size_t size = 16;
        while (size < good * 2) size *= 2;
        if (buf_reserve(&s->measurements, size * sizeof(uint32_t)) < 0) return -1;
        by_name = (uint32_t *)s->measurements.data;
        memset(by_name, 0, size * sizeof(uint32_t));
        mask = size - 1;
    }
    for (size_t k = 0; k < nshapes; k++) {
        Shape *shape = &shapes[k];
        if (!shape->ok) continue;
        Span name = keys[shape->key];
        size_t at = 0;
        Group *found = NULL;
        if (merge) {
            for (at = hash_span(0, b + name.start, name.len & ~ESCAPED) & mask; by_name[at]; at = (at + 1) & mask) {
                Group *other = &groups[by_name[at] - 1];
                if (same_span(b, keys[shapes[other->shape].key], name)) {
                    found = other;
                    break;
                }
            }
            if (found != NULL && !found->closed) {
                int joined = join_group(ctx, found, shape, (uint32_t)(found - groups));
                if (joined < 0) return -1;
                if (joined) continue;
                found->closed = 1;
            }
        }
        uint32_t index = (uint32_t)(*group_count)++;
        if (start_group(ctx, &groups[index], shape, (uint32_t)k, index) < 0) return -1;
        if (merge && found == NULL) by_name[at] = index + 1;
    }
    if (buf_reserve(&s->order, nlines * sizeof(uint32_t)) < 0) return -1;
    uint32_t *order = (uint32_t *)s->order.data;
    for (size_t i = 0; i < nlines; i++)
        if (shapes[lines[i].shape].ok) groups[shapes[lines[i].shape].group].count++;
    uint32_t at = 0;
    for (size_t k = 0; k < *group_count; k++) {
        groups[k].first = at;
        at += groups[k].count;
        groups[k].count = 0; /* refilled as a cursor */
    }
    for (size_t i = 0; i < nlines; i++) {
        const Shape *shape = &shapes[lines[i].shape];
        if (!shape->ok) continue;
        Group *g = &groups[shape->group];
        order[g->first + g->count++] = (uint32_t)i;
    }
    for (size_t k = 0; k < *group_count; k++) {
        Group *g = &groups[k];
        g->line_numbers = malloc(3 * sizeof(int64_t) * (g->count ? g->count : 1));
        if (g->line_numbers == NULL || build_group(ctx, g) < 0) return -1;
        *line_count += g->count;
    }
    return 0;
}

static void free_groups(Group *groups, size_t count) {
    if (groups == NULL) return;
    for (size_t k = 0; k < count; k++) {
        if (groups[k].array) {
            groups[k].array->release(groups[k].array);
            free(groups[k].array);
        }
        free(groups[k].line_numbers);
        free(groups[k].names);
        free(groups[k].kinds);
        free(groups[k].column_of);
    }
    free(groups);
}

/* ---- Python objects ------------------------------------------------------------------------------- */
static void capsule_destructor(PyObject *capsule) {
    struct ArrowArray *array = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (array == NULL) return;
    if (array->release) array->release(array);
    free(array);
}

static PyObject *name_object(const uint8_t *b, Span span, int escape_equals) {
    size_t len = span.len & ~ESCAPED;
    const uint8_t *from = b + span.start;
    if (!(span.len & ESCAPED)) return PyUnicode_DecodeUTF8((const char *)from, (Py_ssize_t)len, "strict");
    char *text = PyMem_Malloc(len ? len : 1);
    if (text == NULL) return PyErr_NoMemory();
    size_t out = 0;
    for (size_t i = 0; i < len; i++) {
        if (from[i] == '\\' && i + 1 < len &&
            (from[i + 1] == ' ' || from[i + 1] == ',' || (escape_equals && from[i + 1] == '=')))
            i++;
        text[out++] = (char)from[i];
    }
    PyObject *name = PyUnicode_DecodeUTF8(text, (Py_ssize_t)out, "strict");
    PyMem_Free(text);
    return name;
}

static PyObject *group_object(Ctx *ctx, Group *g) {
    const Shape *shape = (const Shape *)ctx->s->shapes.data + g->shape;
    const Span *keys = (const Span *)ctx->s->keys.data + shape->key;
    size_t values = g->columns;
    PyObject *names = PyTuple_New((Py_ssize_t)values + 1);
    if (names == NULL) return NULL;
    char kinds[MAX_COLUMNS + 1];
    for (size_t c = 0; c < values; c++) {
        PyObject *name = name_object(ctx->b, g->names[c], 1);
        if (name == NULL) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)c, name);
        kinds[c] = (char)g->kinds[c];
    }
    PyObject *time_name = PyUnicode_FromString("time");
    if (time_name == NULL) {
        Py_DECREF(names);
        return NULL;
    }
    PyTuple_SET_ITEM(names, (Py_ssize_t)values, time_name);
    kinds[values] = K_TIME;
    PyObject *capsule = PyCapsule_New(g->array, CAPSULE_NAME, capsule_destructor);
    if (capsule == NULL) {
        Py_DECREF(names);
        return NULL;
    }
    struct ArrowArray *array = g->array;
    g->array = NULL; /* the capsule owns it now */
    return Py_BuildValue("(NNy#NKy#y#nI)", name_object(ctx->b, keys[0], 0), names, kinds, (Py_ssize_t)values + 1,
                         capsule, (unsigned long long)(uintptr_t)array, (const char *)g->line_numbers,
                         (Py_ssize_t)(g->count * (Py_ssize_t)sizeof(int64_t)),
                         (const char *)(g->line_numbers + g->count),
                         (Py_ssize_t)(2 * g->count * (Py_ssize_t)sizeof(int64_t)), (Py_ssize_t)g->base,
                         (unsigned int)g->members);
}

PyDoc_STRVAR(scan_doc,
"scan(body, multiplier, default_time_ns, merge=True) -> (groups, leftovers, line_count) | int | None\n\n"
"Scan a line-protocol body without the GIL. `multiplier` is nanoseconds per timestamp unit (0: AUTO).\n"
"groups: (table, column names, kinds, capsule, struct array address, line numbers, record spans, base,\n"
"members) per shape of line, or with `merge` per measurement where its shapes agree (rows in line order,\n"
"absent keys null; `base`: how many columns are its first shape's, `members`: shapes merged), the time\n"
"column last; leftovers: int64 (line number, start, end) triples of records for\n"
"the exact parser; line_count: lines in groups. An int is the offset of the first invalid UTF-8 byte;\n"
"None means the body is too large for 32-bit offsets.");

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer view;
    long long multiplier, default_time;
    int merge = 1;
    if (!PyArg_ParseTuple(args, "y*LL|p", &view, &multiplier, &default_time, &merge)) return NULL;
    if (view.len >= INT32_MAX) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    Ctx ctx = {.b = view.buf, .n = (size_t)view.len, .multiplier = multiplier, .default_time = default_time,
               .merge = merge};
    Group *groups = NULL;
    size_t group_count = 0;
    int64_t line_count = 0;
    Py_ssize_t invalid;
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    invalid = utf8_invalid_at(ctx.b, ctx.n);
    if (invalid < 0) {
        ctx.s = scratch_get();
        if (ctx.s == NULL || scan_records(&ctx) < 0 || build_groups(&ctx, &groups, &group_count, &line_count) < 0)
            status = -1;
    }
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (status < 0) {
        PyErr_NoMemory();
    } else if (invalid >= 0) {
        result = PyLong_FromSsize_t(invalid);
    } else {
        PyObject *list = PyList_New((Py_ssize_t)group_count);
        for (size_t k = 0; list && k < group_count; k++) {
            PyObject *item = group_object(&ctx, &groups[k]);
            if (item == NULL) Py_CLEAR(list);
            else PyList_SET_ITEM(list, (Py_ssize_t)k, item);
        }
        if (list)
            result = Py_BuildValue("(Ny#L)", list, ctx.s->leftovers.data ? ctx.s->leftovers.data : "",
                                   (Py_ssize_t)ctx.s->leftovers.size, (long long)line_count);
    }
    free_groups(groups, group_count);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scanner", "The native line-protocol scanner (see native.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scanner(void) {
    static int ready = 0;
    if (!ready) {
        if (pthread_key_create(&scratch_key, scratch_free) != 0) return PyErr_NoMemory();
        init_classes();
        ready = 1;
    }
    return PyModule_Create(&module);
}
