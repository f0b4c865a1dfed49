/*
 * wapo_strtod: strtod for the decimal numbers QuickJS hands it (JSON.parse, which has checked
 * the syntax). Exact, like strtod: a mantissa below 2^53 scaled by 10^k with |k| <= 22 is one
 * correctly rounded IEEE operation on two exact doubles (Clinger's fast path; wasm has no
 * excess precision); anything else (more than 19 significant digits, a larger exponent) goes
 * to libc's strtod, slow but exact (QuickJS's js_atod is not: it drops digits past the 37th).
 * Included by wapojs.c after quickjs.c, whose strtod calls it replaces.
 */

/* 10^k, 0 <= k <= 22, exactly: each product is an integer below 2^53 times a power of two.
 * (Computed rather than a table since a table once moved the heap and exposed QuickJS dropping
 * an out-of-memory in a promise chain; wapojs.c now reports that wherever the heap sits, and a
 * table was checked to be harmless: docs/design.md, "a latent fragility".) */
static inline double wapo_pow10(int k)
{
    double p = 1;
    while (k-- > 0)
        p *= 10;
    return p;
}

double wapo_strtod(const char *str, char **end)
{
    const char *p = str;
    bool neg = false;
    uint64_t m = 0;
    int digits = 0, scale = 0;

    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    const char *start = p;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (digits < 19) {
            m = m * 10 + (uint64_t)(*p - '0');
            digits += m != 0;  /* leading zeros are not significant */
        } else {
            digits = 20;  /* too many digits for the fast path */
        }
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            if (digits < 19) {
                m = m * 10 + (uint64_t)(*p - '0');
                digits += m != 0;
                scale--;
            } else {
                digits = 20;
            }
        }
    }
    if (p == start)
        goto slow;
    if (*p == 'e' || *p == 'E') {
        const char *q = p + 1;
        bool eneg = false;
        int e = 0;
        if (*q == '-' || *q == '+')
            eneg = *q++ == '-';
        if (!(*q >= '0' && *q <= '9'))
            goto slow;
        for (; *q >= '0' && *q <= '9'; q++) {
            if (e < 100000)
                e = e * 10 + (*q - '0');
        }
        scale += eneg ? -e : e;
        p = q;
    }
    if (digits <= 19 && m < ((uint64_t)1 << 53) && scale >= -22 && scale <= 22) {
        double d = (double)m;
        d = scale < 0 ? d / wapo_pow10(-scale) : d * wapo_pow10(scale);
        if (end)
            *end = (char *)p;
        return neg ? -d : d;
    }
 slow:
    return strtod(str, end);
}
