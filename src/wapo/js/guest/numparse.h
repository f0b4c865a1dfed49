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
    if (digits <= 19 && scale >= -19 && scale <= 19) {
        /* m >= 2^53 (16 to 19 digits, e.g. JSON.stringify's -45.670000000000002): exact in
         * 128-bit integers. 10^|scale| < 2^64, so m * 10^scale fits, and the conversion of an
         * unsigned __int128 to double rounds correctly (compiler-rt's __floatuntidf). For a
         * negative scale the quotient of m * 2^(64+a) (a: m's leading zero bits) by 10^-scale
         * has at least 63 bits; a nonzero remainder sets its lowest bit ("round to odd"), which
         * lies far below the 53 bits kept, so the one rounding is the correct one; the power of
         * two is then exact (the result is at least 1e-19: no subnormal). */
        uint64_t p10 = 1;
        for (int k = scale < 0 ? -scale : scale; k > 0; k--)
            p10 *= 10;
        double d;
        if (scale >= 0) {
            d = (double)((unsigned __int128)m * p10);
        } else {
            int a = __builtin_clzll(m);  /* m >= 2^53 here: not zero */
            unsigned __int128 n = (unsigned __int128)(m << a) << 64;
            unsigned __int128 q = n / p10;
            q |= (n - q * p10) != 0;
            d = ldexp((double)q, -(64 + a));
        }
        if (end)
            *end = (char *)p;
        return neg ? -d : d;
    }
 slow:
    return strtod(str, end);
}

/*
 * wapo_js_dtoa: js_dtoa (dtoa.c) with a fast path for Number to string in base 10, the
 * shortest round-trip form (String(x), JSON.stringify): dtoa.c finds the digits with
 * multi-precision arithmetic (32-bit limbs), ~2x slower in the guest than natively. Most
 * numbers in data have few digits: 12.5, -45.67. For s = 0, 1, ... the candidate
 * M = round(|x| * 10^s) is checked with one division: M / 10^s is correctly rounded (M < 2^50
 * and 10^s, s <= 22, are exact doubles), so it equals |x| exactly when the decimal M * 10^-s
 * reads back as x. The first s that works has the fewest digits, and below 2^50 the candidates
 * for one s are more than an ulp apart, so there is only one: the shortest and closest, which
 * is what ECMAScript's Number::toString asks for. Only the positional forms are made here
 * (1e-6 <= |x| < 2^50); everything else (exponents, -0, NaN, other radixes and formats) goes
 * to dtoa.c. tests/test_js_numbers.py compares with Python's repr.
 */
int js_dtoa(char *buf, double d, int radix, int n_digits, int flags, JSDTOATempMem *tmp_mem);

int wapo_js_dtoa(char *buf, double d, int radix, int n_digits, int flags, JSDTOATempMem *tmp_mem)
{
    if (radix == 10 && flags == JS_DTOA_FORMAT_FREE) {
        double a = d < 0 ? -d : d;
        if (a >= 1e-6 && a < 1125899906842624.0) {  /* 2^50; also false for NaN */
            double p = 1;
            for (int s = 0; s <= 22; s++, p *= 10) {
                double x = a * p;
                if (x >= 1125899906842624.0)
                    break;
                uint64_t m = (uint64_t)(x + 0.5);
                if ((double)m / p != a)
                    continue;
                /* m * 10^-s: the digits of m with a point s places from the right */
                char digits[24];
                int n = 0;
                do {
                    digits[n++] = (char)('0' + m % 10);
                    m /= 10;
                } while (m);
                char *q = buf;
                if (d < 0)
                    *q++ = '-';
                if (n <= s) {  /* 0.00ddd */
                    *q++ = '0';
                    *q++ = '.';
                    for (int i = n; i < s; i++)
                        *q++ = '0';
                }
                for (int i = n - 1; i >= 0; i--) {
                    *q++ = digits[i];
                    if (i == s && s > 0 && n > s)
                        *q++ = '.';
                }
                *q = '\0';
                return (int)(q - buf);
            }
        }
    }
    return js_dtoa(buf, d, radix, n_digits, flags, tmp_mem);
}
