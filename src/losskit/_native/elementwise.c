/* Native CPU kernels of the fused elementwise losses (losskit._core.fused) and of the softmax
 * cross-entropy over the rows of (N, C) logits (losskit._fused.cross_entropy).
 *
 * Each loss is two inline functions of one element, its value and its derivative in the input,
 * written from the same closed forms as the PyTorch kernels in losskit/losses/. LK_DEFINE turns a
 * pair into three entry points over a contiguous range:
 *
 *   double lk_sum_<R>_<name>(x, t, n, params, threads)            sum of the losses
 *   void   lk_value_<R>_<name>(x, t, n, params, out, threads)     the losses
 *   void   lk_grad_<R>_<name>(x, t, n, params, g, gs, out, threads)
 *          out = g·dℓ/dx (g per element, or the scalar gs when g is NULL)
 *
 * <R> is f32 or f64: the file is compiled once per type (LK_DOUBLE). One pass over the inputs per
 * direction, the transcendentals vectorised (glibc's libmvec where the build finds it), threads
 * from the OpenMP runtime PyTorch itself runs on. Options arrive as an array of seven numbers; a
 * loss whose cost depends on an option (an exponent that is a small integer or not) has one
 * variant per case, chosen in Python. The row kernels of the cross-entropy are at the end.
 */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef LK_DOUBLE
typedef double real;
#define R(name) name
#define LK_TINY DBL_MIN
#define LK_SQRT_MAX 1.3407807929942596e154
#define LK_SFX f64
#else
typedef float real;
#define R(name) name##f
#define LK_TINY FLT_MIN
#define LK_SQRT_MAX 1.8446742974197924e19f
#define LK_SFX f32
#endif

#ifdef LK_LIBMVEC
#define LK_SIMD __attribute__((simd("notinbranch")))
LK_SIMD real R(exp)(real);
LK_SIMD real R(log)(real);
LK_SIMD real R(log1p)(real);
LK_SIMD real R(expm1)(real);
LK_SIMD real R(tanh)(real);
#endif

#define EXP R(exp)
#define LOG R(log)
#define LOG1P R(log1p)
#define EXPM1 R(expm1)
#define TANH R(tanh)
#define SQRT R(sqrt)

#define LK_INLINE static inline __attribute__((always_inline))

/* EXP_NEG(v) = e^v where v ≤ 0 (the e^-|x| of the logistic losses, a softmax's e^(x - max)).
 * In float32 on 256-bit vectors it is inline (exp_nonpos_f): the logistic losses' kernels take
 * 15-25 % less time than with the vector library's call on AVX2 (a call that also costs the loop
 * its registers); with AVX-512 the library's 16-wide exp is kept. exp_nonpos_f: v = n·ln 2 + r, |r| ≤ ln(2)/2
 * (ln 2 in two parts, n·ln2_hi exact), e^r by its Taylor series to r^7 (first omitted term below
 * 6e-9) in Estrin's order (a chain of four products where Horner's takes eight: the loops wait on
 * it), times 2^n built in the exponent bits from the rounding constant's low bits. Within 1.1
 * ulp of e^v for every float v in [-87.34, 88] (checked against exp in double over all of them);
 * results below the smallest normal float (v < -87.34) are 0; NaN stays NaN. */
#if !defined(LK_DOUBLE) && !(defined(LK_LIBMVEC) && defined(__AVX512F__))
LK_INLINE float exp_nonpos_f(float v) {
    const float lowest = -87.33654f;   /* log of the smallest normal float */
    float c = v < lowest ? lowest : v;
    float shifted = c * 1.44269504088896341f + 12582912.0f;  /* 1.5·2^23: rounds n into the low bits */
    float n = shifted - 12582912.0f;
    float r = c - n * 0.693145751953125f;
    r = r - n * 1.428606765330187e-06f;
    float r2 = r * r;
    float high = (1.0f / 24 + r * (1.0f / 120)) + r2 * (1.0f / 720 + r * (1.0f / 5040));
    float low = 0.5f + r * (1.0f / 6);
    float p = 1.0f + (r + r2 * (low + r2 * high));
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    bits = (bits << 23) + (127u << 23);   /* n + 127 in the exponent field */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return v < lowest ? 0.0f : p * scale;
}
#define EXP_NEG exp_nonpos_f

/* TANH_GIVEN(v, e) = tanh v given e = e^-2|v| (from exp_nonpos_f: log-cosh's derivative):
 * (1 - e)/(1 + e) for |v| ≥ 1/4, where 1 - e ≥ 0.39 does not cancel, and the Taylor series to
 * v^9 below (first omitted term under 1e-8 of the sum); within 3 ulps of tanh over every float.
 * Elsewhere the library's tanh v. */
LK_INLINE float tanh_given(float v, float e) {
    float a = R(fabs)(v), a2 = a * a;
    float series = a + a * a2 * (-1.0f / 3 + a2 * (2.0f / 15 + a2 * (-17.0f / 315 + a2 * (62.0f / 2835))));
    float t = a < 0.25f ? series : (1 - e) / (1 + e);
    return v < 0 ? -t : (v == v ? t : v);
}
#define TANH_GIVEN tanh_given
#else
#define EXP_NEG EXP
#define TANH_GIVEN(v, e) TANH(v)
#endif

/* Below this many elements one thread does the work (a parallel region costs microseconds). The
 * clauses say ``if (parallel : ...)``: a bare ``if`` on ``parallel for simd`` would also switch
 * the simd vectorisation off below the threshold (OpenMP 5), and the loop would run scalar. */
#define LK_PARALLEL_MIN 32768

typedef struct {
    real a, b, c, d, e, f, g;
} params;

#define LK_PRAGMA(text) _Pragma(#text)
#define LK_OMP(clauses) LK_PRAGMA(omp clauses)

/* NaN-propagating max(v, 0) and max(v, floor) (fmax would return the other operand). */
LK_INLINE real pos_part(real v) { return v < 0 ? (real)0 : v; }
LK_INLINE real at_least(real v, real floor) { return v < floor ? floor : v; }

/* log1p(v) = 2·atanh(h) for h = v/(2 + v), v in [0, 1] (so h ≤ 1/3): the odd series of atanh to
 * h^13 (float, in Estrin's order) or h^33 (double), whose first omitted term is below 2e-8
 * (float) or 2e-17 (double) of the sum. Products only: about half the cost of a vectorised
 * log1p, and relatively accurate down to v → 0. NaN stays NaN. */
#ifdef LK_DOUBLE
#define LK_ATANH_TERMS 16
/* Σ_{k=0}^{last} h2^k/(2k + 1), the atanh series over h (Horner's order). */
LK_INLINE double atanh_series(double h2, int last) {
    double acc = 1.0 / (2 * last + 1);
    for (int k = last - 1; k >= 0; k--) acc = acc * h2 + 1.0 / (2 * k + 1);
    return acc;
}
#else
#define LK_ATANH_TERMS 6
#endif
LK_INLINE real log1p_of_ratio(real h) {
    real h2 = h * h;
#ifdef LK_DOUBLE
    real acc = atanh_series(h2, LK_ATANH_TERMS);
#else
    real h4 = h2 * h2;
    real high = (1.0f / 5 + h2 * (1.0f / 7)) + h4 * ((1.0f / 9 + h2 * (1.0f / 11)) + h4 * (1.0f / 13));
    real acc = 1 + h2 * (1.0f / 3 + h2 * high);
#endif
    return 2 * h * acc;
}

/* What the logistic losses need of x, from e = e^-|x| and one division: r = σ(|x|) =
 * 1/(1 + e), s = σ(x), sn = σ(-x) (r on one side, e·r on the other: neither tail cancels) and
 * lg = log1p(e), so that softplus(±x) = max(±x, 0) + lg. 1/((1 + e)(2 + e)) gives both 1/(1 + e)
 * and the e/(2 + e) of log1p_of_ratio. */
typedef struct {
    real e, r, s, sn, lg;
} logistic;
LK_INLINE logistic logistic_from(real x, real e) {
    logistic L;
    L.e = e;
    real inv = 1 / ((1 + L.e) * (2 + L.e));
    L.r = (2 + L.e) * inv;
    L.s = x >= 0 ? L.r : L.e * L.r;
    L.sn = x >= 0 ? L.e * L.r : L.r;
    L.lg = log1p_of_ratio(L.e * (1 + L.e) * inv);
    return L;
}
/* The head of the logistic losses' chain, for their staged bodies: e^-|x|. */
LK_INLINE real exp_neg_abs(real x, real t) {
    (void)t;
    return EXP_NEG(-R(fabs)(x));
}

/* q^k for q ≥ 0 and k in 0…7: q, q² and q⁴ picked by the bits of k and multiplied, no
 * transcendental and no division (other k give junk: callers select such lanes away). */
LK_INLINE real pow_small(real q, real k) {
    int bits = (int)k;
    real q2 = q * q;
    real one = (bits & 1) ? q : (real)1;
    real two = (bits & 2) ? q2 : (real)1;
    real four = (bits & 4) ? q2 * q2 : (real)1;
    return one * two * four;
}

/* q^k for q ≥ 0 and any k, as exp(k log q) (0^k = 0 for k > 0). */
LK_INLINE real pow_any(real q, real k) { return EXP(k * LOG(q)); }

LK_INLINE params params_of(const double *prm) {
    const params P = {(real)prm[0], (real)prm[1], (real)prm[2], (real)prm[3],
                      (real)prm[4], (real)prm[5], (real)prm[6]};
    return P;
}

#ifdef LK_DOUBLE
#define LOG_UNIT LOG
#else
/* float32 logs inline, where a loop spends much of its time in the vector library's log: unlike
 * a call, they leave the loop its registers. log_unit_f(v) for a positive normal finite v:
 * v = 2^k·w with w in [2/3, 4/3) and log1p(w - 1) as f - f²/2 + f³·Q(f), Q of degree 6 fitted to
 * relative error (2.5 ulp at most on [-1/3, 1/3]), in Estrin's order. */
LK_INLINE float log_unit_f(float v) {
    int32_t bits;
    memcpy(&bits, &v, sizeof bits);
    int32_t k = (bits - 0x3f2aaaab) >> 23;
    int32_t wbits = bits - (int32_t)((uint32_t)k << 23);
    float w;
    memcpy(&w, &wbits, sizeof w);
    float f = w - 1.0f, f2 = f * f;
    float f4 = f2 * f2;
    float q = (0.33333346247673035f - 0.250043123960495f * f)
              + f2 * (0.2000330686569214f - 0.16470645368099213f * f)
              + f4 * ((0.14116643369197845f - 0.15131452679634094f * f) + f2 * 0.13463622331619263f);
    float kf = (float)k;
    return kf * 0.693145751953125f + (f - 0.5f * f2 + f2 * f * q + kf * 1.428606765330187e-06f);
}
#define LOG_UNIT log_unit_f

/* log v for any v: subnormals scaled by 2^23 first; 0, inf, NaN and negatives as log gives them. */
LK_INLINE float log_any_f(float v) {
    int tiny = v < FLT_MIN;
    float r = log_unit_f(tiny ? v * 8388608.0f : v) - (tiny ? 15.942385152878742f : 0.0f);
    return v > 0 ? (v < INFINITY ? r : v) : (v == 0 ? -INFINITY : NAN);
}
#endif

/* log1p(v) given u = 1 + v computed on its own as a quotient (relatively accurate where v is near
 * -1, unlike v): log u, plus the rounding v - (u - 1) where u - 1 is exact (u in [1/2, 2]; the
 * correction over u would differ from it by less than an ulp of the result). */
#ifdef LK_DOUBLE
#define LOG_ANY LOG
#else
#define LOG_ANY log_any_f
#endif
LK_INLINE real log1p_given(real u, real v) {
    return LOG_ANY(u) + (u >= (real)0.5 && u <= 2 ? v - (u - 1) : (real)0);
}

/* The sums add LK_SUM_BLOCK losses in the loss's type (each vector lane a few dozen of them),
 * then the blocks' sums in double: float32 losses then cost no conversion per element, and each
 * partial sum's rounding stays within a few dozen ulps of it. */
#define LK_SUM_BLOCK 256

#define CAT_(a, b, c, d) a##_##b##_##c##_##d
#define CAT(a, b, c, d) CAT_(a, b, c, d)
#define SYM(kind, name) CAT(lk, kind, LK_SFX, name)

/* The passes go over blocks of LK_BLOCK elements, BODY(lo, hi, FN, PRE) each: LK_SUM_BODY adds
 * each LK_SUM_BLOCK losses of a block in the loss's type, LK_VALUE_BODY and LK_GRAD_BODY(_G)
 * store; PRE serves the staged bodies below. */
#define LK_BLOCK 4096

#define LK_SUM_BODY(lo, hi, FN, PRE)                                                              \
    for (int64_t k = lo; k < hi; k += LK_SUM_BLOCK) {                                             \
        const int64_t end = k + LK_SUM_BLOCK < hi ? k + LK_SUM_BLOCK : hi;                        \
        real part = 0;                                                                            \
        LK_OMP(simd reduction(+ : part))                                                          \
        for (int64_t i = k; i < end; i++) part += FN(x[i], t[i], &P);                             \
        acc += (double)part;                                                                      \
    }
#define LK_VALUE_BODY(lo, hi, FN, PRE)                                                            \
    LK_OMP(simd)                                                                                  \
    for (int64_t i = lo; i < hi; i++) out[i] = FN(x[i], t[i], &P);
#define LK_GRAD_BODY(lo, hi, FN, PRE)                                                             \
    LK_OMP(simd)                                                                                  \
    for (int64_t i = lo; i < hi; i++) out[i] = s * FN(x[i], t[i], &P);
#define LK_GRAD_BODY_G(lo, hi, FN, PRE)                                                           \
    LK_OMP(simd)                                                                                  \
    for (int64_t i = lo; i < hi; i++) out[i] = g[i] * FN(x[i], t[i], &P);

/* Staged bodies, for losses whose element is one long chain of dependent operations (an exp, a
 * division, a log): one loop over it waits on the chain's latency, the processor's window
 * holding about two iterations. Here each LK_SUM_BLOCK elements go through two loops, the first
 * storing the chain's head pre = PRE(x, t) (e.g. e^-|x|) in a buffer that stays in the L1 cache,
 * the second FN(x, t, pre, &P): the same operations in two shorter chains, more of them in flight
 * (15–25 % off these kernels on AVX2). With two heads (_STAGED2, a loss of two
 * independent terms) the first loop also stores PRE(t, x), passed after pre. */
#define LK_HEADS_1(PRE)                                                                           \
    real pre[LK_SUM_BLOCK];                                                                       \
    LK_OMP(simd)                                                                                  \
    for (int64_t i = k; i < end; i++) pre[i - k] = PRE(x[i], t[i]);
#define LK_HEADS_2(PRE)                                                                           \
    real pre[LK_SUM_BLOCK], pre_t[LK_SUM_BLOCK];                                                  \
    LK_OMP(simd)                                                                                  \
    for (int64_t i = k; i < end; i++) pre[i - k] = PRE(x[i], t[i]), pre_t[i - k] = PRE(t[i], x[i]);
#define LK_ARGS_1 pre[i - k]
#define LK_ARGS_2 pre[i - k], pre_t[i - k]
#define LK_SUM_STAGES(lo, hi, FN, PRE, HEADS)                                                     \
    for (int64_t k = lo; k < hi; k += LK_SUM_BLOCK) {                                             \
        const int64_t end = k + LK_SUM_BLOCK < hi ? k + LK_SUM_BLOCK : hi;                        \
        LK_HEADS_##HEADS(PRE)                                                                     \
        real part = 0;                                                                            \
        LK_OMP(simd reduction(+ : part))                                                          \
        for (int64_t i = k; i < end; i++) part += FN(x[i], t[i], LK_ARGS_##HEADS, &P);            \
        acc += (double)part;                                                                      \
    }
#define LK_STORE_STAGES(lo, hi, FN, PRE, HEADS, SCALE)                                            \
    for (int64_t k = lo; k < hi; k += LK_SUM_BLOCK) {                                             \
        const int64_t end = k + LK_SUM_BLOCK < hi ? k + LK_SUM_BLOCK : hi;                        \
        LK_HEADS_##HEADS(PRE)                                                                     \
        LK_OMP(simd)                                                                              \
        for (int64_t i = k; i < end; i++) out[i] = SCALE FN(x[i], t[i], LK_ARGS_##HEADS, &P);     \
    }
#define LK_SUM_BODY_STAGED(lo, hi, FN, PRE) LK_SUM_STAGES(lo, hi, FN, PRE, 1)
#define LK_VALUE_BODY_STAGED(lo, hi, FN, PRE) LK_STORE_STAGES(lo, hi, FN, PRE, 1, )
#define LK_GRAD_BODY_STAGED(lo, hi, FN, PRE) LK_STORE_STAGES(lo, hi, FN, PRE, 1, s *)
#define LK_GRAD_BODY_G_STAGED(lo, hi, FN, PRE) LK_STORE_STAGES(lo, hi, FN, PRE, 1, g[i] *)
#define LK_SUM_BODY_STAGED2(lo, hi, FN, PRE) LK_SUM_STAGES(lo, hi, FN, PRE, 2)
#define LK_VALUE_BODY_STAGED2(lo, hi, FN, PRE) LK_STORE_STAGES(lo, hi, FN, PRE, 2, )
#define LK_GRAD_BODY_STAGED2(lo, hi, FN, PRE) LK_STORE_STAGES(lo, hi, FN, PRE, 2, s *)
#define LK_GRAD_BODY_G_STAGED2(lo, hi, FN, PRE) LK_STORE_STAGES(lo, hi, FN, PRE, 2, g[i] *)

/* One block of [lo, hi): PICK(BODY, FN, BINARY_FN, PRE) chooses the form (LK_ONE_FORM or
 * LK_BINARY_FORMS below). */
#define LK_BLOCKS(CLAUSES, PICK, BODY, FN, BINARY_FN, PRE)                                        \
    LK_OMP(parallel for schedule(static) num_threads(threads) if (parallel : n >= LK_PARALLEL_MIN) CLAUSES) \
    for (int64_t b = 0; b < (n + LK_BLOCK - 1) / LK_BLOCK; b++) {                                 \
        const int64_t lo = b * LK_BLOCK, hi = lo + LK_BLOCK < n ? lo + LK_BLOCK : n;              \
        PICK(BODY, FN, BINARY_FN, PRE)                                                            \
    }
#define LK_ONE_FORM(BODY, FN, BINARY_FN, PRE) BODY(lo, hi, FN, PRE)

/* The three entry points; FAST(P) and PICK as for LK_BLOCKS, STAGED empty or _STAGED (the
 * bodies), PRE the first stage of the staged ones. */
#define LK_ENTRY_POINTS(name, LOSS, GRAD, BINARY_LOSS, BINARY_GRAD, FAST, PICK, STAGED, PRE)     \
    double SYM(sum, name)(const real *restrict x, const real *restrict t, int64_t n,              \
                          const double *restrict prm, int threads) {                              \
        const params P = params_of(prm);                                                          \
        const int fast = FAST(&P);                                                                \
        double acc = 0.0;                                                                         \
        (void)fast;                                                                               \
        LK_BLOCKS(reduction(+ : acc), PICK, LK_SUM_BODY##STAGED, LOSS, BINARY_LOSS, PRE)          \
        return acc;                                                                               \
    }                                                                                             \
    void SYM(value, name)(const real *restrict x, const real *restrict t, int64_t n,              \
                          const double *restrict prm, real *restrict out, int threads) {          \
        const params P = params_of(prm);                                                          \
        const int fast = FAST(&P);                                                                \
        (void)fast;                                                                               \
        LK_BLOCKS(, PICK, LK_VALUE_BODY##STAGED, LOSS, BINARY_LOSS, PRE)                          \
    }                                                                                             \
    void SYM(grad, name)(const real *restrict x, const real *restrict t, int64_t n,               \
                         const double *restrict prm, const real *restrict g, double gs,           \
                         real *restrict out, int threads) {                                       \
        const params P = params_of(prm);                                                          \
        const int fast = FAST(&P);                                                                \
        const real s = (real)gs;                                                                  \
        (void)fast;                                                                               \
        if (g == NULL) {                                                                          \
            LK_BLOCKS(, PICK, LK_GRAD_BODY##STAGED, GRAD, BINARY_GRAD, PRE)                       \
        } else {                                                                                  \
            LK_BLOCKS(, PICK, LK_GRAD_BODY_G##STAGED, GRAD, BINARY_GRAD, PRE)                     \
        }                                                                                         \
    }

LK_INLINE int no_binary_form(const params *P) {
    (void)P;
    return 0;
}
#define LK_DEFINE(name, LOSS, GRAD)                                                               \
    LK_ENTRY_POINTS(name, LOSS, GRAD, LOSS, GRAD, no_binary_form, LK_ONE_FORM, , )
/* A loss with staged bodies: LOSS and GRAD take (x, t, pre, P) with pre = PRE(x, t), or with
 * _STAGED2 (x, t, pre, pre_t, P) with pre_t = PRE(t, x). */
#define LK_DEFINE_STAGED(name, PRE, LOSS, GRAD)                                                   \
    LK_ENTRY_POINTS(name, LOSS, GRAD, LOSS, GRAD, no_binary_form, LK_ONE_FORM, _STAGED, PRE)
#define LK_DEFINE_STAGED2(name, PRE, LOSS, GRAD)                                                  \
    LK_ENTRY_POINTS(name, LOSS, GRAD, LOSS, GRAD, no_binary_form, LK_ONE_FORM, _STAGED2, PRE)

/* Losses with cheaper forms for targets in {0, 1} (one of two terms per element): a block whose
 * targets are all 0 or 1 runs BINARY_LOSS##_k and BINARY_GRAD##_k when FAST(P) gives a variant
 * k in 1…4 for the options (0: none applies), LOSS and GRAD otherwise. The variant is picked
 * once per block, so that a loop-invariant option (an exponent) is a constant in it. */
LK_INLINE int binary_block(const real *restrict t, int64_t lo, int64_t hi) {
    int other = 0;
    LK_OMP(simd reduction(| : other))
    for (int64_t i = lo; i < hi; i++) other |= (t[i] != 0) & (t[i] != 1);
    return !other;
}
#define LK_BINARY_FORMS(BODY, FN, BINARY_FN, PRE)                                                 \
    switch (fast && binary_block(t, lo, hi) ? fast : 0) {                                         \
    case 1: BODY(lo, hi, BINARY_FN##_1, PRE) break;                                               \
    case 2: BODY(lo, hi, BINARY_FN##_2, PRE) break;                                               \
    case 3: BODY(lo, hi, BINARY_FN##_3, PRE) break;                                               \
    case 4: BODY(lo, hi, BINARY_FN##_4, PRE) break;                                               \
    default: BODY(lo, hi, FN, PRE)                                                                \
    }
/* Staged, as LK_DEFINE_STAGED: every form takes pre = PRE(x, t). */
#define LK_DEFINE_BINARY_STAGED(name, PRE, LOSS, GRAD, BINARY_LOSS, BINARY_GRAD, FAST)            \
    LK_ENTRY_POINTS(name, LOSS, GRAD, BINARY_LOSS, BINARY_GRAD, FAST, LK_BINARY_FORMS, _STAGED, PRE)

/* ------------------------------------------------------------------------------ regression */

/* log cosh r = a + log1p(e^{-2a}) - log 2 with a = |r|, derivative tanh r. Below a = 0.6 that
 * difference loses the small result to the rounding of its terms (12 % relative error at
 * a = 1e-3 in float32 had come from the rounding of log 2), and a polynomial in z = a² takes
 * over, z·P(z): in double the series Σ c_n z^n, c_n = (-1)^(n+1)·2^(2n)(2^(2n) - 1)|B_2n| /
 * (2n·(2n)!), to 18 terms (successive terms shrink by 0.15 or more, so the first omitted one
 * is below half an ulp); in float32 a degree-5 P fitted to log cosh(√z)/z on [0, 0.36] (least
 * squares in relative error on Chebyshev nodes; 3.8e-10 relative at most, where the series
 * would take 8 terms). Above, log 2 is taken in two parts, a - hi being exact up to a = 2·log 2
 * (Sterbenz): the result's error is then the rounding of log1p(e), at most 1.5 times the result
 * there. */
#ifdef LK_DOUBLE
#define LK_LN2_HI 0.6931471803691238
#define LK_LN2_LO 1.9082149292705877e-10
static const double log_cosh_series_terms[18] = {
    0.5, -0.08333333333333333, 0.022222222222222223,
    -0.006746031746031746, 0.0021869488536155205, -0.0007386029608251831,
    0.0002565805740408915, -9.09896491907074e-05, 3.277930227475478e-05,
    -1.1956455712177625e-05, 4.405244525877023e-06, -1.6365968284715348e-06,
    6.122655795895756e-07, -2.3041747198769394e-07, 8.715903837635848e-08,
    -3.3116463500327045e-08, 1.2632091406687664e-08, -4.835171934325458e-09};
LK_INLINE double log_cosh_near_zero(double a) {
    double z = a * a, acc = log_cosh_series_terms[17];
    for (int k = 16; k >= 0; k--) acc = acc * z + log_cosh_series_terms[k];
    return acc * z;
}
#else
#define LK_LN2_HI 0.693145751953125f
#define LK_LN2_LO 1.428606765330187e-06f
LK_INLINE float log_cosh_near_zero(float a) {
    float z = a * a, z2 = z * z;   /* Estrin's order */
    float low = (0.49999999981091353f - 0.08333329542997323f * z)
                + z2 * (0.022220982223444388f - 0.006731052643323583f * z);
    float high = 0.0021037459281251208f - 0.0005168102119366607f * z;
    return (low + (z2 * z2) * high) * z;
}
#endif
/* log1p(e) for e = e^{-2a} ≤ e^{-1.2} (a ≥ 0.6): 2·atanh(h), h = e/(2 + e) ≤ 0.131, whose odd
 * series needs 4 terms (float) or 9 (double) there, against 7 or 17 on [0, 1]. */
LK_INLINE real log_cosh_far_log1p(real e) {
    real h = e / (2 + e), h2 = h * h;
#ifdef LK_DOUBLE
    real acc = atanh_series(h2, 8);
#else
    real acc = (1.0f + h2 * (1.0f / 3)) + (h2 * h2) * (1.0f / 5 + h2 * (1.0f / 7));
#endif
    return 2 * h * acc;
}
LK_INLINE real exp_neg_2abs(real x, real t) { return EXP_NEG(-2 * R(fabs)(x - t)); }
LK_INLINE real log_cosh_loss(real x, real t, real e, const params *P) {
    (void)P;
    real a = R(fabs)(x - t);
    real far = (a - LK_LN2_HI) + (log_cosh_far_log1p(e) - LK_LN2_LO);
    return a < (real)0.6 ? log_cosh_near_zero(a) : far;
}
LK_INLINE real log_cosh_grad(real x, real t, real e, const params *P) {
    (void)P, (void)e;
    return TANH_GIVEN(x - t, e);
}
LK_DEFINE_STAGED(log_cosh, exp_neg_2abs, log_cosh_loss, log_cosh_grad)

/* Pseudo-Huber, a = 1/δ²: δ²(sqrt(1 + r²/δ²) - 1) = r²/(sqrt(1 + a r²) + 1), no cancellation. */
LK_INLINE real pseudo_huber_loss(real x, real t, const params *P) {
    real r2 = (x - t) * (x - t);
    return r2 / (SQRT(1 + P->a * r2) + 1);
}
LK_INLINE real pseudo_huber_grad(real x, real t, const params *P) {
    real r = x - t;
    return r / SQRT(1 + P->a * r * r);
}
LK_DEFINE(pseudo_huber, pseudo_huber_loss, pseudo_huber_grad)

/* Barron's general robust loss; a = 1/c², b = |α - 2|, c = α, d = 1/(|α - 2|·c²). One variant per
 * closed form. */
LK_INLINE real robust_a2_loss(real x, real t, const params *P) {
    return (real)0.5 * P->a * (x - t) * (x - t);
}
LK_INLINE real robust_a2_grad(real x, real t, const params *P) { return P->a * (x - t); }
LK_DEFINE(general_robust_a2, robust_a2_loss, robust_a2_grad)

LK_INLINE real robust_a0_loss(real x, real t, const params *P) {
    return LOG1P((real)0.5 * P->a * (x - t) * (x - t));
}
LK_INLINE real robust_a0_grad(real x, real t, const params *P) {
    real r = x - t;
    return P->a * r / (1 + (real)0.5 * P->a * r * r);
}
LK_DEFINE(general_robust_a0, robust_a0_loss, robust_a0_grad)

LK_INLINE real robust_welsch_loss(real x, real t, const params *P) {
    return -EXPM1((real)-0.5 * P->a * (x - t) * (x - t));
}
LK_INLINE real robust_welsch_grad(real x, real t, const params *P) {
    real r = x - t;
    return P->a * r * EXP_NEG((real)-0.5 * P->a * r * r);
}
LK_DEFINE(general_robust_welsch, robust_welsch_loss, robust_welsch_grad)

LK_INLINE real robust_a1_loss(real x, real t, const params *P) {
    real z2 = P->a * (x - t) * (x - t);
    return z2 / (SQRT(z2 + 1) + 1);
}
LK_INLINE real robust_a1_grad(real x, real t, const params *P) {
    real r = x - t;
    return P->a * r / SQRT(1 + P->a * r * r);
}
LK_DEFINE(general_robust_a1, robust_a1_loss, robust_a1_grad)

/* d = 1/(|α - 2|·c²), so that (r/c)²/|α - 2| is one product. */
LK_INLINE real robust_any_loss(real x, real t, const params *P) {
    return P->b / P->c * EXPM1((real)0.5 * P->c * LOG1P(P->d * (x - t) * (x - t)));
}
LK_INLINE real robust_any_grad(real x, real t, const params *P) {
    real r = x - t;
    return P->a * r * EXP(((real)0.5 * P->c - 1) * LOG(1 + P->d * r * r));
}
LK_DEFINE(general_robust_any, robust_any_loss, robust_any_grad)

/* α a multiple of ½ in [-2, 2) other than 0 and 1, K = 2α in {-4, -3, -2, -1, 1, 3}: with
 * v = (r/c)²/|α - 2| and s = (1 + v)^(1/4) by two square roots, (1 + v)^(α/2) = s^K. For v ≤ 1,
 * s^|K| - 1 = (s - 1)(1 + s + … + s^(|K|-1)) with s - 1 = v/((1 + s)(1 + s²)): no cancellation
 * near 0; past v = 1 the powers themselves (and s^K - 1 → -1 as v → ∞ for K < 0, where a
 * quotient of infinities would be NaN). Derivative a·r·s^(K-4), as r/s² (of the order of c)
 * times powers of 1/s, so that no power overflows where the derivative does not underflow. */
LK_INLINE real pow_upto8(real q, int k) {
    real q4 = (q * q) * (q * q);
    return pow_small(q, (real)(k & 7)) * ((k & 8) ? q4 * q4 : (real)1);
}
#define LK_ROBUST_HALF(name, K)                                                                  \
    LK_INLINE real name##_loss(real x, real t, const params *P) {                                \
        real r = x - t, v = P->d * r * r;                                                        \
        real s = SQRT(SQRT(1 + v)), s2 = s * s;                                                  \
        real power = pow_upto8(s, (K) < 0 ? -(K) : (K));                                         \
        real geometric = 1 + ((K) * (K) >= 4 ? s : 0) + ((K) * (K) >= 9 ? s2 : 0)                \
                         + ((K) * (K) >= 16 ? s2 * s : 0);                                       \
        int near = v <= 1;                                                                       \
        real inv = 1 / ((near ? (1 + s) * (1 + s2) : (real)1) * ((K) < 0 ? power : (real)1));    \
        real m = near ? v * geometric * inv : ((K) > 0 ? power - 1 : inv - 1);                   \
        return P->b / P->c * ((K) < 0 && near ? -m : m);                                         \
    }                                                                                            \
    LK_INLINE real name##_grad(real x, real t, const params *P) {                                \
        real r = x - t;                                                                          \
        real q = 1 / SQRT(SQRT(1 + P->d * r * r)), rq = r * q;                                   \
        return P->a * ((K) == 3 ? rq : rq * q * pow_upto8(q, 2 - (K)));                          \
    }                                                                                            \
    LK_DEFINE(name, name##_loss, name##_grad)

LK_ROBUST_HALF(general_robust_half_m4, -4)
LK_ROBUST_HALF(general_robust_half_m3, -3)
LK_ROBUST_HALF(general_robust_half_m2, -2)
LK_ROBUST_HALF(general_robust_half_m1, -1)
LK_ROBUST_HALF(general_robust_half_1, 1)
LK_ROBUST_HALF(general_robust_half_3, 3)

/* Quantile (pinball), a = τ: max(x - t, 0) - τ(x - t); derivative [x > t] - τ. */
LK_INLINE real quantile_loss(real x, real t, const params *P) {
    real over = x - t;
    return pos_part(over) - P->a * over;
}
LK_INLINE real quantile_grad(real x, real t, const params *P) {
    return (x > t ? (real)1 : (real)0) - P->a;
}
LK_DEFINE(quantile, quantile_loss, quantile_grad)

/* MAPE, a = ε, b = the scale (1, or 100 for percent): b·|x - t| / max(|t|, ε). */
LK_INLINE real sign_of(real v) { return (real)(v > 0) - (real)(v < 0); }
LK_INLINE real mape_loss(real x, real t, const params *P) {
    return P->b * R(fabs)(x - t) / at_least(R(fabs)(t), P->a);
}
LK_INLINE real mape_grad(real x, real t, const params *P) {
    return P->b * sign_of(x - t) / at_least(R(fabs)(t), P->a);
}
LK_DEFINE(mape, mape_loss, mape_grad)

/* sMAPE, a = ε: 2|r| / D with D = max(|x| + |t|, ε); the floor passes no gradient below ε. */
LK_INLINE real smape_loss(real x, real t, const params *P) {
    return 2 * R(fabs)(x - t) / at_least(R(fabs)(x) + R(fabs)(t), P->a);
}
LK_INLINE real smape_grad(real x, real t, const params *P) {
    real total = R(fabs)(x) + R(fabs)(t);
    real inv = 1 / at_least(total, P->a);
    real r = x - t;
    real live = total >= P->a ? sign_of(x) : (real)0;
    return 2 * (sign_of(r) - R(fabs)(r) * inv * live) * inv;
}
LK_DEFINE(smape, smape_loss, smape_grad)

/* MSLE: d² with d = log1p(x⁺) - log1p(t⁺) = log1p(v) for v = (x⁺ - t⁺)/(1 + t⁺) and
 * 1 + v = (1 + x⁺)/(1 + t⁺): no cancellation when x ≈ t, none when t ≫ x; derivative
 * 2d/(1 + x⁺) where x ≥ 0 (0 elsewhere, a NaN input included, as through the clamp). */
LK_INLINE real msle_log_ratio(real xp, real tp) {
    real q = 1 / (1 + tp);
    return log1p_given((1 + xp) * q, (xp - tp) * q);
}
LK_INLINE real msle_loss(real x, real t, const params *P) {
    (void)P;
    real d = msle_log_ratio(pos_part(x), pos_part(t));
    return d * d;
}
LK_INLINE real msle_grad(real x, real t, const params *P) {
    (void)P;
    real xp = pos_part(x);
    return x >= 0 ? 2 * msle_log_ratio(xp, pos_part(t)) / (1 + xp) : (real)0;
}
LK_DEFINE(msle, msle_loss, msle_grad)

/* Tweedie deviance of the mean μ (μ = e^x with log_input) for the power a = p, c = 1/((1-p)(2-p)):
 *   p = 0: (y - μ)²;  p = 1: 2(y log(y/μ) - y + μ) (0·log 0 = 0);  p = 2: 2(log(μ/y) + y/μ - 1);
 *   else 2(max(y, 0)^(2-p)·c - y·μ^(1-p)/(1-p) + μ^(2-p)/(2-p));
 * dD/dμ = 2μ^(-p)(μ - y) in every case, times μ with log_input. LOGIN: log_input. */
#define LK_TWEEDIE(name, LOGIN, LOSS_OF_MU, GRAD_OF_MU)                                           \
    LK_INLINE real name##_loss(real x, real y, const params *P) {                                \
        real mu = LOGIN ? EXP(x) : x;                                                            \
        real log_mu = LOGIN ? x : LOG(mu);                                                       \
        (void)log_mu, (void)P;                                                                   \
        return LOSS_OF_MU;                                                                       \
    }                                                                                            \
    LK_INLINE real name##_grad(real x, real y, const params *P) {                                \
        real mu = LOGIN ? EXP(x) : x;                                                            \
        real log_mu = LOGIN ? x : LOG(mu);                                                       \
        (void)log_mu, (void)P;                                                                   \
        real d = GRAD_OF_MU;                                                                     \
        return LOGIN ? d * mu : d;                                                               \
    }                                                                                            \
    LK_DEFINE(name, name##_loss, name##_grad)

#define TWEEDIE_P0 ((y - mu) * (y - mu))
#define TWEEDIE_P0_GRAD (2 * (mu - y))
#define TWEEDIE_P1 (2 * ((y == 0 ? (real)0 : y * LOG(y / mu)) - y + mu))
#define TWEEDIE_P1_GRAD (2 * (1 - y / mu))
#define TWEEDIE_P2 (2 * (LOG(mu / y) + y / mu - 1))
#define TWEEDIE_P2_GRAD (2 * (mu - y) / (mu * mu))
/* μ^(2-p) = μ·μ^(1-p), except at μ = 0 where that is 0·∞ and pow gives 0 (p < 2) or ∞ (p > 2). */
LK_INLINE real tweedie_any_loss_of(real mu, real y, real log_mu, const params *P) {
    real m1 = EXP((1 - P->a) * log_mu);
    real m2 = mu == 0 ? (P->a < 2 ? (real)0 : (real)INFINITY) : mu * m1;
    return 2 * (EXP((2 - P->a) * LOG(pos_part(y))) * P->c - y * m1 / (1 - P->a) + m2 / (2 - P->a));
}
#define TWEEDIE_ANY tweedie_any_loss_of(mu, y, log_mu, P)
#define TWEEDIE_ANY_GRAD (2 * EXP(-P->a * log_mu) * (mu - y))

/* p = 1.5 (compound Poisson–Gamma, the usual default): powers of ½ are square roots,
 * 2(-4·sqrt(y⁺) + 2y/sqrt(μ) + 2·sqrt(μ)) and 2(μ - y)/(μ·sqrt(μ)). */
#define TWEEDIE_P15 (2 * (-4 * SQRT(pos_part(y)) + 2 * y / SQRT(mu) + 2 * SQRT(mu)))
#define TWEEDIE_P15_GRAD (2 * (mu - y) / (mu * SQRT(mu)))

/* The p = 0, 1, 1.5, 2 forms do not read log μ (the compiler drops it). */
LK_TWEEDIE(tweedie_p0, 0, TWEEDIE_P0, TWEEDIE_P0_GRAD)
LK_TWEEDIE(tweedie_p1, 0, TWEEDIE_P1, TWEEDIE_P1_GRAD)
LK_TWEEDIE(tweedie_p2, 0, TWEEDIE_P2, TWEEDIE_P2_GRAD)
LK_TWEEDIE(tweedie_p15, 0, TWEEDIE_P15, TWEEDIE_P15_GRAD)
LK_TWEEDIE(tweedie_any, 0, TWEEDIE_ANY, TWEEDIE_ANY_GRAD)
LK_TWEEDIE(tweedie_p0_log, 1, TWEEDIE_P0, TWEEDIE_P0_GRAD)
LK_TWEEDIE(tweedie_p1_log, 1, TWEEDIE_P1, TWEEDIE_P1_GRAD)
LK_TWEEDIE(tweedie_p2_log, 1, TWEEDIE_P2, TWEEDIE_P2_GRAD)
LK_TWEEDIE(tweedie_p15_log, 1, TWEEDIE_P15, TWEEDIE_P15_GRAD)
LK_TWEEDIE(tweedie_any_log, 1, TWEEDIE_ANY, TWEEDIE_ANY_GRAD)

/* ------------------------------------------------------------------------ Kullback–Leibler */

/* KL terms of log-probabilities x against probabilities y: y(log y - x) for y > 0 and 0
 * elsewhere (0·log 0 = 0 in the value and both gradients, whatever x is there); ∂/∂x = -y,
 * ∂/∂y = log y - x + 1. The log-target twin takes y = e^t: e^t(t - x), -e^t and e^t(t - x + 1). */
LK_INLINE real kl_div_loss(real x, real y, const params *P) {
    (void)P;
    return y > 0 ? y * (LOG(y) - x) : (real)0;
}
LK_INLINE real kl_div_grad(real x, real y, const params *P) {
    (void)x, (void)P;
    return y > 0 ? -y : (real)0;
}
LK_INLINE real kl_div_target_grad(real x, real y, const params *P) {
    (void)P;
    return y > 0 ? LOG(y) - x + 1 : (real)0;
}
LK_DEFINE(kl_div, kl_div_loss, kl_div_grad)
LK_DEFINE(kl_div_target, kl_div_loss, kl_div_target_grad)

LK_INLINE real kl_div_log_loss(real x, real t, const params *P) {
    (void)P;
    real p = EXP(t);
    return p > 0 ? p * (t - x) : (real)0;
}
LK_INLINE real kl_div_log_grad(real x, real t, const params *P) {
    (void)x, (void)P;
    real p = EXP(t);
    return p > 0 ? -p : (real)0;
}
LK_INLINE real kl_div_log_target_grad(real x, real t, const params *P) {
    (void)P;
    real p = EXP(t);
    return p > 0 ? p * (t - x + 1) : (real)0;
}
LK_DEFINE(kl_div_log, kl_div_log_loss, kl_div_log_grad)
LK_DEFINE(kl_div_log_target, kl_div_log_loss, kl_div_log_target_grad)

/* ------------------------------------------------------------------------ margins (y = ±1) */

/* max(0, 1 - yx); derivative -y where the margin is positive (0 at the kink, as relu). */
LK_INLINE real hinge_loss(real x, real y, const params *P) {
    (void)P;
    return pos_part(1 - y * x);
}
LK_INLINE real hinge_grad(real x, real y, const params *P) {
    (void)P;
    return 1 - y * x > 0 ? -y : (real)0;
}
LK_DEFINE(hinge, hinge_loss, hinge_grad)

LK_INLINE real squared_hinge_loss(real x, real y, const params *P) {
    (void)P;
    real h = pos_part(1 - y * x);
    return h * h;
}
LK_INLINE real squared_hinge_grad(real x, real y, const params *P) {
    (void)P;
    return -2 * y * pos_part(1 - y * x);
}
LK_DEFINE(squared_hinge, squared_hinge_loss, squared_hinge_grad)

/* ------------------------------------------------------------------------------ GAN terms */

/* softplus(x) = max(x, 0) + log1p(e^-|x|); σ(x) = 1/(1 + e^-|x|) for x ≥ 0, e^-|x|/(1 + e^-|x|)
 * below, so neither tail cancels. */
LK_INLINE real softplus_given(real x, real e) { return pos_part(x) + logistic_from(x, e).lg; }
LK_INLINE real sigmoid_given(real x, real e) {
    real r = 1 / (1 + e);
    return x >= 0 ? r : e * r;
}

LK_INLINE real softplus_neg_loss(real x, real t, real e, const params *P) {
    (void)t, (void)P;
    return softplus_given(-x, e);
}
LK_INLINE real softplus_neg_grad(real x, real t, real e, const params *P) {
    (void)t, (void)P;
    return -sigmoid_given(-x, e);
}
LK_DEFINE_STAGED(gan_softplus_neg, exp_neg_abs, softplus_neg_loss, softplus_neg_grad)

LK_INLINE real softplus_loss(real x, real t, real e, const params *P) {
    (void)t, (void)P;
    return softplus_given(x, e);
}
LK_INLINE real softplus_grad(real x, real t, real e, const params *P) {
    (void)t, (void)P;
    return sigmoid_given(x, e);
}
LK_DEFINE_STAGED(gan_softplus, exp_neg_abs, softplus_loss, softplus_grad)

LK_INLINE real neg_softplus_loss(real x, real t, real e, const params *P) {
    (void)t, (void)P;
    return -softplus_given(x, e);
}
LK_INLINE real neg_softplus_grad(real x, real t, real e, const params *P) {
    (void)t, (void)P;
    return -sigmoid_given(x, e);
}
LK_DEFINE_STAGED(gan_neg_softplus, exp_neg_abs, neg_softplus_loss, neg_softplus_grad)

LK_INLINE real half_square_to_one_loss(real x, real t, const params *P) {
    (void)t, (void)P;
    return (real)0.5 * (x - 1) * (x - 1);
}
LK_INLINE real half_square_to_one_grad(real x, real t, const params *P) {
    (void)t, (void)P;
    return x - 1;
}
LK_DEFINE(gan_half_square_to_one, half_square_to_one_loss, half_square_to_one_grad)

LK_INLINE real half_square_loss(real x, real t, const params *P) {
    (void)t, (void)P;
    return (real)0.5 * x * x;
}
LK_INLINE real half_square_grad(real x, real t, const params *P) {
    (void)t, (void)P;
    return x;
}
LK_DEFINE(gan_half_square, half_square_loss, half_square_grad)

LK_INLINE real hinge_real_loss(real x, real t, const params *P) {
    (void)t, (void)P;
    return pos_part(1 - x);
}
LK_INLINE real hinge_real_grad(real x, real t, const params *P) {
    (void)t, (void)P;
    return x < 1 ? (real)-1 : (real)0;
}
LK_DEFINE(gan_hinge_real, hinge_real_loss, hinge_real_grad)

LK_INLINE real hinge_fake_loss(real x, real t, const params *P) {
    (void)t, (void)P;
    return pos_part(1 + x);
}
LK_INLINE real hinge_fake_grad(real x, real t, const params *P) {
    (void)t, (void)P;
    return x > -1 ? (real)1 : (real)0;
}
LK_DEFINE(gan_hinge_fake, hinge_fake_loss, hinge_fake_grad)

/* A discriminator's loss on paired scores, ℓ(r, f) = real(r) + fake(f) with x = r and t = f: the
 * pair's entry points differentiate in r, its ``_target`` twin in f. */
#define LK_GAN_PAIR(name, REAL, FAKE)                                                            \
    LK_INLINE real name##_loss(real r, real f, const params *P) {                                \
        return REAL##_loss(r, 0, P) + FAKE##_loss(f, 0, P);                                      \
    }                                                                                            \
    LK_INLINE real name##_grad(real r, real f, const params *P) {                                \
        (void)f;                                                                                 \
        return REAL##_grad(r, 0, P);                                                             \
    }                                                                                            \
    LK_INLINE real name##_target_grad(real r, real f, const params *P) {                         \
        (void)r;                                                                                 \
        return FAKE##_grad(f, 0, P);                                                             \
    }                                                                                            \
    LK_DEFINE(name, name##_loss, name##_grad)                                                    \
    LK_DEFINE(name##_target, name##_loss, name##_target_grad)

/* The minimax pair, staged with both heads e^-|r| and e^-|f|. */
LK_INLINE real minimax_loss(real r, real f, real er, real ef, const params *P) {
    return softplus_neg_loss(r, 0, er, P) + softplus_loss(f, 0, ef, P);
}
LK_INLINE real minimax_grad(real r, real f, real er, real ef, const params *P) {
    (void)f, (void)ef;
    return softplus_neg_grad(r, 0, er, P);
}
LK_INLINE real minimax_target_grad(real r, real f, real er, real ef, const params *P) {
    (void)r, (void)er;
    return softplus_grad(f, 0, ef, P);
}
LK_DEFINE_STAGED2(gan_d_minimax, exp_neg_abs, minimax_loss, minimax_grad)
LK_DEFINE_STAGED2(gan_d_minimax_target, exp_neg_abs, minimax_loss, minimax_target_grad)
LK_GAN_PAIR(gan_d_lsgan, half_square_to_one, half_square)
LK_GAN_PAIR(gan_d_hinge, hinge_real, hinge_fake)

/* ------------------------------------------------------------------------ sigmoid focal */

/* a = α (< 0: no weighting), b = γ. With the logit clamped to ±sqrt(max) as in the composed
 * BCE (no gradient through the clamp), e = e^-|x|, r = σ(|x|), p = σ(x):
 *   BCE = max(x, 0) - t·x + log1p(e),  q = 1 - p_t = t·σ(-x) + (1 - t)·σ(x) (≥ the smallest
 *   normal), p - t = (1 - t)·σ(x) - t·σ(-x): sums of σ(±x) taken from e and r, so neither
 *   cancels in a saturated tail (where the factor q^(γ-1) of the gradient can be huge);
 *   ℓ = α_t·q^γ·BCE,  dℓ/dx = α_t·(q^γ·(p - t) + γ·q^(γ-1)·(1 - 2t)·σσ'·BCE), σσ' = e·r².
 * POW is pow_small (γ in 0…4) or pow_any. */
#define LK_FOCAL(name, POW)                                                                      \
    LK_INLINE real name##_loss(real x, real t, real e, const params *P) {                        \
        real xc = x > LK_SQRT_MAX ? LK_SQRT_MAX : (x < -LK_SQRT_MAX ? -LK_SQRT_MAX : x);         \
        logistic L = logistic_from(xc, e);                                                       \
        real bce = pos_part(xc) - t * xc + L.lg;                                                 \
        real q = at_least(t * L.sn + (1 - t) * L.s, LK_TINY);                                    \
        real at = P->a < 0 ? (real)1 : P->a * t + (1 - P->a) * (1 - t);                          \
        return at * bce * (P->b == 0 ? (real)1 : POW(q, P->b));                                  \
    }                                                                                            \
    LK_INLINE real name##_grad(real x, real t, real e, const params *P) {                        \
        real xc = x > LK_SQRT_MAX ? LK_SQRT_MAX : (x < -LK_SQRT_MAX ? -LK_SQRT_MAX : x);         \
        logistic L = logistic_from(xc, e);                                                       \
        real d = xc == x ? (1 - t) * L.s - t * L.sn : (real)0;                                   \
        real bce = pos_part(xc) - t * xc + L.lg;                                                 \
        real q = at_least(t * L.sn + (1 - t) * L.s, LK_TINY);                                    \
        real dq = (1 - 2 * t) * L.e * L.r * L.r * bce;                                           \
        real focal = P->b == 0 ? d : (d * q + P->b * dq) * POW(q, P->b - 1);                     \
        real at = P->a < 0 ? (real)1 : P->a * t + (1 - P->a) * (1 - t);                          \
        return at * focal;                                                                       \
    }                                                                                            \
    LK_DEFINE_STAGED(name, exp_neg_abs, name##_loss, name##_grad)

LK_FOCAL(sigmoid_focal_int, pow_small)
LK_FOCAL(sigmoid_focal_any, pow_any)

/* ------------------------------------------------------------------------------ asymmetric */

/* (1 - t)·a + t·b, exactly a at t = 0 and b at t = 1 (as torch.lerp): a + t·(b - a) would
 * carry the rounding of b - a into a small b at t = 1. */
LK_INLINE real mix(real t, real a, real b) {
    return t < (real)0.5 ? a + t * (b - a) : b - (1 - t) * (b - a);
}

/* Ridnik et al.'s asymmetric loss, a = γ₊, b = γ₋, c = the probability margin m, d = log ε
 * (-inf: no floor), e = the floor of log(1 - p_m): d when m < ε, else -inf, f = log m. With
 * s = σ(x), sn = σ(-x), ss = σσ' and lg = log1p(e^-|x|) (logistic_from):
 *   log p = min(x, 0) - lg;  log(1 - p_m) = log min(sn + m, 1) (m > 0) or -max(x, 0) - lg,
 *   each floored at log ε (the second only when m < ε);
 *   pos = sn^γ₊·log p;  neg = p_m^γ₋·log(1 - p_m), p_m = max(s - m, 0) (s when m = 0);
 *   ℓ = -(t·pos + (1 - t)·neg), and its derivative by the product rule, each floor and clamp
 *   passing no gradient where it is active. POWP/POWN: pow_small or pow_any for γ₊/γ₋. */
/* log min(sn + m, 1) from logistic_from's parts, without a log: log(sn + m) is
 * log sn + log1p(m/sn) where sn ≥ m and log m + log1p(sn/m) below, each log1p of a ratio in
 * [0, 1] with h = num/(2·den + num); log sn = -max(x, 0) - lg. c = m, f = log m. */
LK_INLINE real log_margin(real x, logistic L, const params *P) {
    int above = L.sn >= P->c;
    real num = above ? P->c : L.sn, den = above ? L.sn : P->c;
    real base = above ? -pos_part(x) - L.lg : P->f;
    real v = base + log1p_of_ratio(num / (2 * den + num));
    return L.sn + P->c < 1 ? v : (real)0;
}

#define LK_ASYMMETRIC_FORMS(name, POWP, POWN, CLIP)                                              \
    LK_INLINE real name##_loss(real x, real t, real e, const params *P) {                        \
        logistic L = logistic_from(x, e);                                                        \
        real log_p = at_least((x < 0 ? x : (real)0) - L.lg, P->d);                               \
        real log_q = CLIP ? log_margin(x, L, P) : -pos_part(x) - L.lg;                           \
        log_q = at_least(log_q, P->e);                                                           \
        real pos = P->a == 0 ? log_p : log_p * POWP(L.sn, P->a);                                 \
        real base = CLIP ? pos_part(L.s - P->c) : L.s;                                           \
        real neg = P->b == 0 ? log_q : log_q * POWN(base, P->b);                                 \
        return -mix(t, neg, pos);                                                                \
    }                                                                                            \
    LK_INLINE real name##_grad(real x, real t, real e, const params *P) {                        \
        logistic L = logistic_from(x, e);                                                        \
        real s = L.s, sn = L.sn, ss = L.e * L.r * L.r;                                           \
        real log_p = (x < 0 ? x : (real)0) - L.lg;                                               \
        real dlog_p = log_p >= P->d ? sn : (real)0;                                              \
        log_p = at_least(log_p, P->d);                                                           \
        real dpos = P->a == 0 ? dlog_p : (dlog_p - P->a * s * log_p) * POWP(sn, P->a);           \
        real u = sn + P->c;                                                                      \
        real log_q = CLIP ? log_margin(x, L, P) : -pos_part(x) - L.lg;                           \
        real dlog_q = CLIP ? -ss / u : -s;                                                       \
        dlog_q = CLIP && P->b == 0 && u > 1 ? (real)0 : dlog_q;                                  \
        dlog_q = log_q < P->e ? (real)0 : dlog_q;                                                \
        log_q = at_least(log_q, P->e);                                                           \
        real dneg;                                                                               \
        if (CLIP) {                                                                              \
            real p_m = pos_part(s - P->c);                                                       \
            real dfactor = p_m > 0 ? POWN(p_m, P->b - 1) * ss * P->b : (real)0;                  \
            dneg = P->b == 0 ? dlog_q : POWN(p_m, P->b) * dlog_q + dfactor * log_q;              \
        } else {                                                                                 \
            dneg = P->b == 0 ? dlog_q : (dlog_q + P->b * sn * log_q) * POWN(s, P->b);            \
        }                                                                                        \
        return -mix(t, dneg, dpos);                                                              \
    }
#define LK_ASYMMETRIC(name, POWP, POWN, CLIP)                                                    \
    LK_ASYMMETRIC_FORMS(name, POWP, POWN, CLIP)                                                  \
    LK_DEFINE_STAGED(name, exp_neg_abs, name##_loss, name##_grad)

/* The gradient for binary targets with γ₊ = 0 and γ₋ in 1…4 (the paper's setting; g = ε): each
 * element has one of the two terms, -σ(-x) where p ≥ ε for a positive, and for a negative
 * -p_m^(γ₋-1)·σσ'·(γ₋·log q - p_m/(σ(-x) + m)) with q = min(σ(-x) + m, 1): one exp, one division
 * and one log, where the general form takes two divisions and two series. With e = e^-|x|,
 * d = 1 + e and D = (σ(-x) + m)·d (e + m·d for x ≥ 0, 1 + m·d below), σ(±x) and 1/(σ(-x) + m)
 * are quotients by d·D. The log's argument is at least m, a normal number (the condition of
 * asymmetric_binary_applies). k = γ₋, a constant in each of the four variants (a power by the
 * exponent's bits in the loop had cost 9 % of the gradient). */
LK_INLINE real asymmetric_binary_grad(real x, real t, real e, const params *P, int k) {
    real d = 1 + e;
    real num = x >= 0 ? e : (real)1, num_s = x >= 0 ? (real)1 : e;
    real big = num + P->c * d;
    real inv = 1 / (d * big);
    real r = big * inv;
    real sn = num * r, s = num_s * r;
    real log_q = LOG_UNIT(big * r < 1 ? big * r : (real)1);
    real live = log_q >= P->e ? (real)1 : (real)0;
    real p_m = pos_part(s - P->c);
    real inv_u = d * d * inv;                   /* 1/(σ(-x) + m) */
    real neg = pow_small(p_m, k - 1) * s * sn * (k * at_least(log_q, P->e) - p_m * inv_u * live);
    return t != 0 ? (s >= P->g ? -sn : (real)0) : -neg;
}
/* The loss for binary targets under the same conditions: a positive costs
 * min(softplus(-x), -log ε), a negative -p_m^γ₋·log q; one log serves both, of 1 + e (with
 * log1p_given's rounding correction) or of q. */
LK_INLINE real asymmetric_binary_loss(real x, real t, real e, const params *P, int k) {
    real d = 1 + e;
    real inv = 1 / d;
    real sn = (x >= 0 ? e : (real)1) * inv, s = (x >= 0 ? (real)1 : e) * inv;
    real q = sn + P->c < 1 ? sn + P->c : (real)1;
    real log_arg = LOG_UNIT(t != 0 ? d : q) + (t != 0 ? e - (d - 1) : (real)0);
    real pos = pos_part(-x) + log_arg;
    real neg = pow_small(pos_part(s - P->c), k) * at_least(log_arg, P->e);
    return t != 0 ? (pos < -P->d ? pos : -P->d) : -neg;
}
/* The variant: γ₋ itself (1…4), 0 where the binary forms do not apply. */
LK_INLINE int asymmetric_binary_applies(const params *P) {
    return P->a == 0 && P->b >= 1 && P->b <= 4 && P->b == (int)P->b && P->c >= LK_TINY ? (int)P->b : 0;
}
#define LK_WITH_POWER(fn, k)                                                                      \
    LK_INLINE real fn##_##k(real x, real t, real e, const params *P) { return fn(x, t, e, P, k); }
LK_WITH_POWER(asymmetric_binary_loss, 1)
LK_WITH_POWER(asymmetric_binary_loss, 2)
LK_WITH_POWER(asymmetric_binary_loss, 3)
LK_WITH_POWER(asymmetric_binary_loss, 4)
LK_WITH_POWER(asymmetric_binary_grad, 1)
LK_WITH_POWER(asymmetric_binary_grad, 2)
LK_WITH_POWER(asymmetric_binary_grad, 3)
LK_WITH_POWER(asymmetric_binary_grad, 4)

LK_ASYMMETRIC_FORMS(asymmetric_ii_clip, pow_small, pow_small, 1)
LK_DEFINE_BINARY_STAGED(asymmetric_ii_clip, exp_neg_abs, asymmetric_ii_clip_loss, asymmetric_ii_clip_grad,
                        asymmetric_binary_loss, asymmetric_binary_grad, asymmetric_binary_applies)
LK_ASYMMETRIC(asymmetric_ia_clip, pow_small, pow_any, 1)
LK_ASYMMETRIC(asymmetric_ai_clip, pow_any, pow_small, 1)
LK_ASYMMETRIC(asymmetric_aa_clip, pow_any, pow_any, 1)
LK_ASYMMETRIC(asymmetric_ii, pow_small, pow_small, 0)
LK_ASYMMETRIC(asymmetric_ia, pow_small, pow_any, 0)
LK_ASYMMETRIC(asymmetric_ai, pow_any, pow_small, 0)
LK_ASYMMETRIC(asymmetric_aa, pow_any, pow_any, 0)

/* ------------------------------------------ functions of a position's NLL u = -log p_y ≥ 0 */

/* Softmax focal, a = γ: u·q^γ with q = 1 - p_y = -expm1(-max(u, tiny)); derivative
 * q^γ + γ·u·q^(γ-1)·p_y, p_y = 1 - q, the clamp passing no gradient below the smallest normal. */
#define LK_NLL_FOCAL(name, POW)                                                                  \
    LK_INLINE real name##_loss(real u, real t, const params *P) {                                \
        (void)t;                                                                                 \
        return u * POW(-EXPM1(-at_least(u, LK_TINY)), P->a);                                     \
    }                                                                                            \
    LK_INLINE real name##_grad(real u, real t, const params *P) {                                \
        (void)t;                                                                                 \
        real q = -EXPM1(-at_least(u, LK_TINY));                                                  \
        real inner = u >= LK_TINY ? P->a * u * POW(q, P->a - 1) * (1 - q) : (real)0;            \
        return POW(q, P->a) + inner;                                                             \
    }                                                                                            \
    LK_DEFINE(name, name##_loss, name##_grad)

LK_NLL_FOCAL(nll_focal_int, pow_small)
LK_NLL_FOCAL(nll_focal_any, pow_any)

/* Poly-1, a = ε: u + ε(1 - e^-u) = u - ε·expm1(-u); derivative 1 + ε·e^-u. */
LK_INLINE real nll_poly1_loss(real u, real t, const params *P) {
    (void)t;
    return u - P->a * EXPM1(-u);
}
LK_INLINE real nll_poly1_grad(real u, real t, const params *P) {
    (void)t;
    return 1 + P->a * EXP_NEG(-u);
}
LK_DEFINE(nll_poly1, nll_poly1_loss, nll_poly1_grad)

/* ----------------------------------------------------------- softmax cross-entropy over rows */

LK_INLINE real row_max(const real *row, int64_t classes) {
    real m = -INFINITY;
    LK_OMP(simd reduction(max : m))
    for (int64_t j = 0; j < classes; j++) m = row[j] > m ? row[j] : m;
    return m;
}

LK_INLINE void zero_row(real *row, int64_t classes) {
    for (int64_t j = 0; j < classes; j++) row[j] = 0;
}

/* Rows of a contiguous (rows × classes) block of logits against class indices. The forward
 * writes each row's log-sum-exp (max + log Σ e^(x - max)) and NLL = lse - x[target] (0 where the
 * target is ``ignore``), and returns how many other targets lie outside [0, classes) (their NLL is
 * NaN, and the caller raises). With label smoothing (``smooth`` and ``wfin`` not NULL) it also
 * writes Σ_c w_c·(lse - x_c) and Σ_c w_c over the classes with a finite logit (a -inf logit is
 * outside the support and takes no smoothing mass); w is the class weights, or NULL for ones.
 * The backward writes on_p·e^(x - lse) - uniform·w_c·[x_c finite] - at_target·[c = target] (all
 * per row; ``uniform`` NULL without smoothing), zeros for an ignored row, so ``out`` may be ``x``. */
/* Rows per group of the forward: each group's maxima, then its sums of exponentials, then its
 * logs as one vector loop, so that the rows' short chains overlap and the log is not a scalar
 * call per row (a third off the forward at 64 classes); at most LK_ROW_BYTES of logits per group,
 * so that they are still in the L2 cache on the second pass. */
#define LK_ROW_GROUP 16
#define LK_ROW_BYTES 131072

int64_t SYM(ce_forward, rows)(const real *restrict x, int64_t rows, int64_t classes,
                              const int64_t *restrict target, int64_t ignore,
                              const real *restrict w, real *restrict nll, real *restrict lse,
                              real *restrict smooth, real *restrict wfin, int threads) {
    int64_t bad = 0;
    const int64_t fit = LK_ROW_BYTES / ((int64_t)sizeof(real) * (classes > 0 ? classes : 1));
    const int64_t group = fit < 1 ? 1 : (fit < LK_ROW_GROUP ? fit : LK_ROW_GROUP);
    LK_OMP(parallel for reduction(+ : bad) schedule(static) num_threads(threads)
           if (parallel : rows * classes >= LK_PARALLEL_MIN))
    for (int64_t b = 0; b < (rows + group - 1) / group; b++) {
        const int64_t lo = b * group, len = lo + group < rows ? group : rows - lo;
        real m[LK_ROW_GROUP], s[LK_ROW_GROUP], l[LK_ROW_GROUP], wx[LK_ROW_GROUP], wsum[LK_ROW_GROUP];
        for (int64_t r = 0; r < len; r++) m[r] = row_max(x + (lo + r) * classes, classes);
        /* one loop per case: a load under a condition would keep the loop scalar */
        if (smooth == NULL) {
            for (int64_t r = 0; r < len; r++) {
                const real *row = x + (lo + r) * classes;
                const real mr = m[r];
                real sr = 0;
                LK_OMP(simd reduction(+ : sr))
                for (int64_t j = 0; j < classes; j++) sr += EXP_NEG(row[j] - mr);
                s[r] = sr;
            }
        } else {
            for (int64_t r = 0; r < len; r++) {
                const real *row = x + (lo + r) * classes;
                const real mr = m[r];
                real sr = 0, wxr = 0, wsumr = 0;
                if (w == NULL) {
                    LK_OMP(simd reduction(+ : sr, wxr, wsumr))
                    for (int64_t j = 0; j < classes; j++) {
                        int finite = row[j] > -INFINITY;
                        sr += EXP_NEG(row[j] - mr);
                        wxr += finite ? row[j] : (real)0;
                        wsumr += finite ? (real)1 : (real)0;
                    }
                } else {
                    LK_OMP(simd reduction(+ : sr, wxr, wsumr))
                    for (int64_t j = 0; j < classes; j++) {
                        int finite = row[j] > -INFINITY;
                        sr += EXP_NEG(row[j] - mr);
                        wxr += finite ? w[j] * row[j] : (real)0;
                        wsumr += finite ? w[j] : (real)0;
                    }
                }
                s[r] = sr, wx[r] = wxr, wsum[r] = wsumr;
            }
        }
        LK_OMP(simd)
        for (int64_t r = 0; r < len; r++) l[r] = m[r] + LOG(s[r]);
        for (int64_t r = 0; r < len; r++) {
            const int64_t i = lo + r, k = target[i];
            int ok = k >= 0 && k < classes;
            bad += !ok && k != ignore;
            lse[i] = l[r];
            nll[i] = k == ignore ? (real)0 : (ok ? l[r] - x[i * classes + k] : (real)NAN);
            if (smooth != NULL) {
                smooth[i] = k == ignore ? (real)0 : l[r] * wsum[r] - wx[r];
                wfin[i] = wsum[r];
            }
        }
    }
    return bad;
}

void SYM(ce_backward, rows)(const real *x, int64_t rows, int64_t classes,
                            const int64_t *restrict target, int64_t ignore,
                            const real *restrict w, const real *restrict lse,
                            const real *restrict on_p, const real *restrict uniform,
                            const real *restrict at_target, real *out, int threads) {
    LK_OMP(parallel for schedule(static) num_threads(threads)
           if (parallel : rows * classes >= LK_PARALLEL_MIN))
    for (int64_t i = 0; i < rows; i++) {
        const real *row = x + i * classes;
        real *grad = out + i * classes;
        const int64_t k = target[i];
        if (k == ignore) {
            zero_row(grad, classes);
            continue;
        }
        const real a = on_p[i], u = uniform == NULL ? (real)0 : uniform[i], l = lse[i];
        if (uniform == NULL) {
            LK_OMP(simd)
            for (int64_t j = 0; j < classes; j++) grad[j] = a * EXP_NEG(row[j] - l);
        } else if (w == NULL) {
            LK_OMP(simd)
            for (int64_t j = 0; j < classes; j++)
                grad[j] = a * EXP_NEG(row[j] - l) - (row[j] > -INFINITY ? u : (real)0);
        } else {
            LK_OMP(simd)
            for (int64_t j = 0; j < classes; j++)
                grad[j] = a * EXP_NEG(row[j] - l) - (row[j] > -INFINITY ? u * w[j] : (real)0);
        }
        grad[k] -= at_target[i];   /* the loop wrote the softmax term at k too */
    }
}

/* Rows against probability targets t (the logits' shape), smoothed to (1 - ε)·t + ε/C when eps is
 * not 0 and weighted by w (NULL: ones): with W = Σ_c w_c·t_c and T = Σ_c w_c·t_c·x_c over the
 * classes with a finite logit (a -inf class is outside the support: its term is dropped), the
 * forward writes lse, W and the loss lse·W - T; the backward g·(W·e^(x - lse) - w·t) at the finite
 * classes and 0 at the others, so ``out`` may be ``x``. */
LK_INLINE real smoothed(real t, real keep, real uniform) { return t * keep + uniform; }   /* exact at ε = 0 */

void SYM(soft_ce_forward, rows)(const real *restrict x, int64_t rows, int64_t classes,
                                const real *restrict t, const real *restrict w, double eps,
                                real *restrict loss, real *restrict lse, real *restrict mass,
                                int threads) {
    const real e = (real)(1 - eps), uniform = (real)(eps / (double)classes);
    LK_OMP(parallel for schedule(static) num_threads(threads)
           if (parallel : rows * classes >= LK_PARALLEL_MIN))
    for (int64_t i = 0; i < rows; i++) {
        const real *row = x + i * classes, *ti = t + i * classes;
        const real m = row_max(row, classes);
        real s = 0, wt = 0, wtx = 0;
        if (w == NULL) {
            LK_OMP(simd reduction(+ : s, wt, wtx))
            for (int64_t j = 0; j < classes; j++) {
                /* loads outside the conditions: a load under one keeps the loop scalar */
                real tj = smoothed(ti[j], e, uniform), xj = row[j];
                int finite = xj > -INFINITY;
                s += EXP_NEG(xj - m);
                wt += finite ? tj : (real)0;
                wtx += finite ? tj * xj : (real)0;
            }
        } else {
            LK_OMP(simd reduction(+ : s, wt, wtx))
            for (int64_t j = 0; j < classes; j++) {
                real tj = w[j] * smoothed(ti[j], e, uniform), xj = row[j];
                int finite = xj > -INFINITY;
                s += EXP_NEG(xj - m);
                wt += finite ? tj : (real)0;
                wtx += finite ? tj * xj : (real)0;
            }
        }
        const real l = m + LOG(s);
        lse[i] = l;
        mass[i] = wt;
        loss[i] = l * wt - wtx;
    }
}

void SYM(soft_ce_backward, rows)(const real *x, int64_t rows, int64_t classes,
                                 const real *restrict t, const real *restrict w, double eps,
                                 const real *restrict lse, const real *restrict mass,
                                 const real *restrict g, real *out, int threads) {
    const real e = (real)(1 - eps), uniform = (real)(eps / (double)classes);
    LK_OMP(parallel for schedule(static) num_threads(threads)
           if (parallel : rows * classes >= LK_PARALLEL_MIN))
    for (int64_t i = 0; i < rows; i++) {
        const real *row = x + i * classes, *ti = t + i * classes;
        real *grad = out + i * classes;
        const real gi = g[i], a = g[i] * mass[i], l = lse[i];
        if (w == NULL) {
            LK_OMP(simd)
            for (int64_t j = 0; j < classes; j++) {
                real xj = row[j], v = a * EXP_NEG(xj - l) - gi * smoothed(ti[j], e, uniform);
                grad[j] = xj > -INFINITY ? v : (real)0;
            }
        } else {
            LK_OMP(simd)
            for (int64_t j = 0; j < classes; j++) {
                real xj = row[j], v = a * EXP_NEG(xj - l) - gi * w[j] * smoothed(ti[j], e, uniform);
                grad[j] = xj > -INFINITY ? v : (real)0;
            }
        }
    }
}

/* The same over a (batch × classes × positions) block, the class dimension strided by ``positions``
 * (channels-first segmentation logits): each thread takes chunks of LK_CS_CHUNK positions of one
 * batch entry and sweeps the classes over them, vectorised along the positions. ``smooth`` and
 * ``wfin`` (NULL without label smoothing) and ``w`` (NULL for unit weights) as above. */
#define LK_CS_CHUNK 256

int64_t SYM(ce_forward, planes)(const real *restrict x, int64_t batch, int64_t classes,
                                int64_t positions, const int64_t *restrict target, int64_t ignore,
                                const real *restrict w, real *restrict nll, real *restrict lse,
                                real *restrict smooth, real *restrict wfin, int threads) {
    int64_t bad = 0;
    const int64_t chunks = (positions + LK_CS_CHUNK - 1) / LK_CS_CHUNK;
    LK_OMP(parallel for reduction(+ : bad) schedule(static) num_threads(threads)
           if (parallel : batch * classes * positions >= LK_PARALLEL_MIN))
    for (int64_t job = 0; job < batch * chunks; job++) {
        const int64_t b = job / chunks, s0 = (job % chunks) * LK_CS_CHUNK;
        const int64_t len = positions - s0 < LK_CS_CHUNK ? positions - s0 : LK_CS_CHUNK;
        const real *base = x + b * classes * positions + s0;
        real m[LK_CS_CHUNK], s[LK_CS_CHUNK], wx[LK_CS_CHUNK], ws[LK_CS_CHUNK];
        for (int64_t k = 0; k < len; k++) m[k] = -INFINITY, s[k] = 0, wx[k] = 0, ws[k] = 0;
        for (int64_t j = 0; j < classes; j++) {
            const real *row = base + j * positions;
            LK_OMP(simd)
            for (int64_t k = 0; k < len; k++) m[k] = row[k] > m[k] ? row[k] : m[k];
        }
        for (int64_t j = 0; j < classes; j++) {
            const real *row = base + j * positions;
            LK_OMP(simd)
            for (int64_t k = 0; k < len; k++) s[k] += EXP_NEG(row[k] - m[k]);
            if (smooth != NULL) {
                const real wj = w == NULL ? (real)1 : w[j];
                LK_OMP(simd)
                for (int64_t k = 0; k < len; k++) {
                    int finite = row[k] > -INFINITY;
                    wx[k] += finite ? wj * row[k] : (real)0;
                    ws[k] += finite ? wj : (real)0;
                }
            }
        }
        for (int64_t k = 0; k < len; k++) {
            const int64_t p = b * positions + s0 + k;
            const int64_t t = target[p];
            const int ok = t >= 0 && t < classes;
            const real l = m[k] + LOG(s[k]);
            bad += !ok && t != ignore;
            lse[p] = l;
            nll[p] = t == ignore ? (real)0 : (ok ? l - base[t * positions + k] : (real)NAN);
            if (smooth != NULL) {
                smooth[p] = t == ignore ? (real)0 : l * ws[k] - wx[k];
                wfin[p] = ws[k];
            }
        }
    }
    return bad;
}

/* out = on_p·e^(x - lse) - uniform·w_c·[x finite] - at_target·[c = target] per position (uniform
 * NULL without smoothing), 0 where the target is ignored; ``out`` may be ``x``. */
void SYM(ce_backward, planes)(const real *x, int64_t batch, int64_t classes, int64_t positions,
                              const int64_t *restrict target, int64_t ignore,
                              const real *restrict w, const real *restrict lse,
                              const real *restrict on_p, const real *restrict uniform,
                              const real *restrict at_target, real *out, int threads) {
    const int64_t chunks = (positions + LK_CS_CHUNK - 1) / LK_CS_CHUNK;
    LK_OMP(parallel for schedule(static) num_threads(threads)
           if (parallel : batch * classes * positions >= LK_PARALLEL_MIN))
    for (int64_t job = 0; job < batch * chunks; job++) {
        const int64_t b = job / chunks, s0 = (job % chunks) * LK_CS_CHUNK;
        const int64_t len = positions - s0 < LK_CS_CHUNK ? positions - s0 : LK_CS_CHUNK;
        const int64_t p0 = b * positions + s0;
        real a[LK_CS_CHUNK], u[LK_CS_CHUNK], hit[LK_CS_CHUNK], l[LK_CS_CHUNK];
        int64_t t[LK_CS_CHUNK];
        for (int64_t k = 0; k < len; k++) {
            t[k] = target[p0 + k];
            a[k] = on_p[p0 + k];
            u[k] = uniform == NULL ? (real)0 : uniform[p0 + k];
            hit[k] = at_target[p0 + k];
            l[k] = lse[p0 + k];
        }
        for (int64_t j = 0; j < classes; j++) {
            const real *row = x + (b * classes + j) * positions + s0;
            real *grad = out + (b * classes + j) * positions + s0;
            const real wj = w == NULL ? (real)1 : w[j];
            LK_OMP(simd)
            for (int64_t k = 0; k < len; k++) {
                real v = a[k] * EXP_NEG(row[k] - l[k]) - (row[k] > -INFINITY ? u[k] * wj : (real)0);
                v = t[k] == j ? v - hit[k] : v;
                grad[k] = t[k] == ignore ? (real)0 : v;   /* whatever the ignored logits hold */
            }
        }
    }
}

/* ------------------------------------------------ multiclass region sums (Dice and relatives) */

/* From logits x (batch × classes × positions) and columns y (batch × positions: the class, or
 * ``ignored`` for a pixel left out), with p the softmax over the classes, accumulate per (n, c)
 * in double: acc[0] inter = Σ p·[y = c], acc[1] mass = Σ p·[y ≠ ignored], acc[2] count =
 * Σ [y = c] (acc: 3 × batch × classes, zeroed by the caller). With dense targets (one-hot or
 * soft labels, x's shape) instead of columns: Σ p·t, Σ p and Σ t, each chunk's sums in the
 * loss's type. One exp per logit: a chunk's
 * exponentials stay in a buffer of at most 8192 numbers. */
static int64_t region_chunk(int64_t classes) {
    int64_t len = 8192 / (classes > 0 ? classes : 1);
    return len < 8 ? 8 : (len > 256 ? 256 : len);
}

/* For ``len`` positions of one image (classes strided by ``positions``): e[c·step + k] =
 * e^(x - max over the classes) and inv[k] = 1/Σ_c e, so that the softmax is e·inv. */
LK_INLINE void chunk_softmax(const real *base, int64_t classes, int64_t positions, int64_t len,
                             int64_t step, real *restrict e, real *restrict inv) {
    real m[step];
    for (int64_t k = 0; k < len; k++) m[k] = -INFINITY, inv[k] = 0;
    for (int64_t c = 0; c < classes; c++) {
        LK_OMP(simd)
        for (int64_t k = 0; k < len; k++) {
            const real v = base[c * positions + k];
            m[k] = v > m[k] ? v : m[k];
        }
    }
    for (int64_t c = 0; c < classes; c++) {
        LK_OMP(simd)
        for (int64_t k = 0; k < len; k++) {
            e[c * step + k] = EXP_NEG(base[c * positions + k] - m[k]);
            inv[k] += e[c * step + k];
        }
    }
    for (int64_t k = 0; k < len; k++) inv[k] = 1 / inv[k];
}

void SYM(region_forward, planes)(const real *restrict x, int64_t batch, int64_t classes,
                                 int64_t positions, const int64_t *restrict y, int64_t ignored,
                                 const real *restrict dense, double *restrict acc, int threads) {
    const int64_t step = region_chunk(classes);
    const int64_t chunks = (positions + step - 1) / step;
    double *inter = acc, *mass = acc + batch * classes, *count = acc + 2 * batch * classes;
    LK_OMP(parallel for schedule(static) num_threads(threads)
           if (parallel : batch * classes * positions >= LK_PARALLEL_MIN))
    for (int64_t job = 0; job < batch * chunks; job++) {
        const int64_t n = job / chunks, s0 = (job % chunks) * step;
        const int64_t len = positions - s0 < step ? positions - s0 : step;
        const real *base = x + n * classes * positions + s0;
        const int64_t *col = y == NULL ? NULL : y + n * positions + s0;
        real inv[step], e[classes * step];
        chunk_softmax(base, classes, positions, len, step, e, inv);
        for (int64_t c = 0; c < classes; c++) {
            double ic = 0, mc = 0, cc = 0;
            if (dense != NULL) {
                const real *tc = dense + (n * classes + c) * positions + s0;
                real pi = 0, pm = 0, pc = 0;
                LK_OMP(simd reduction(+ : pi, pm, pc))
                for (int64_t k = 0; k < len; k++) {
                    real p = e[c * step + k] * inv[k];
                    pi += p * tc[k];
                    pm += p;
                    pc += tc[k];
                }
                ic = pi, mc = pm, cc = pc;
            } else {
                LK_OMP(simd reduction(+ : ic, mc, cc))
                for (int64_t k = 0; k < len; k++) {
                    real p = e[c * step + k] * inv[k];
                    ic += col[k] == c ? (double)p : 0.0;
                    mc += col[k] != ignored ? (double)p : 0.0;
                    cc += col[k] == c ? 1.0 : 0.0;
                }
            }
            LK_OMP(atomic)
            inter[n * classes + c] += ic;
            LK_OMP(atomic)
            mass[n * classes + c] += mc;
            LK_OMP(atomic)
            count[n * classes + c] += cc;
        }
    }
}

/* The gradient in x of Σ g_inter·inter + Σ g_mass·mass: with q = g_mass·[y ≠ ignored] +
 * g_inter·[y = c] (g_mass + g_inter·t against dense targets), out = p·(q - Σ_c p·q) (the
 * softmax's backward); ``out`` may be ``x``. */
void SYM(region_backward, planes)(const real *x, int64_t batch, int64_t classes, int64_t positions,
                                  const int64_t *restrict y, int64_t ignored, const real *restrict dense,
                                  const real *restrict g_inter, const real *restrict g_mass,
                                  real *out, int threads) {
    const int64_t step = region_chunk(classes);
    const int64_t chunks = (positions + step - 1) / step;
    LK_OMP(parallel for schedule(static) num_threads(threads)
           if (parallel : batch * classes * positions >= LK_PARALLEL_MIN))
    for (int64_t job = 0; job < batch * chunks; job++) {
        const int64_t n = job / chunks, s0 = (job % chunks) * step;
        const int64_t len = positions - s0 < step ? positions - s0 : step;
        const real *base = x + n * classes * positions + s0;
        real *grad = out + n * classes * positions + s0;
        const int64_t *col = y == NULL ? NULL : y + n * positions + s0;
        const real *gi = g_inter + n * classes, *gm = g_mass + n * classes;
        real inv[step], dot[step], e[classes * step];
        chunk_softmax(base, classes, positions, len, step, e, inv);
        for (int64_t k = 0; k < len; k++) dot[k] = 0;
        for (int64_t c = 0; c < classes; c++) {
            const real a = gi[c], b = gm[c];
            const real *tc = dense == NULL ? NULL : dense + (n * classes + c) * positions + s0;
            if (tc != NULL) {
                LK_OMP(simd)
                for (int64_t k = 0; k < len; k++) {
                    real p = e[c * step + k] * inv[k];
                    e[c * step + k] = p;
                    dot[k] += p * (b + a * tc[k]);
                }
            } else {
                LK_OMP(simd)
                for (int64_t k = 0; k < len; k++) {
                    real p = e[c * step + k] * inv[k];
                    e[c * step + k] = p;
                    dot[k] += p * ((col[k] != ignored ? b : (real)0) + (col[k] == c ? a : (real)0));
                }
            }
        }
        for (int64_t c = 0; c < classes; c++) {
            const real a = gi[c], b = gm[c];
            const real *tc = dense == NULL ? NULL : dense + (n * classes + c) * positions + s0;
            real *row = grad + c * positions;
            if (tc != NULL) {
                LK_OMP(simd)
                for (int64_t k = 0; k < len; k++) row[k] = e[c * step + k] * (b + a * tc[k] - dot[k]);
            } else {
                LK_OMP(simd)
                for (int64_t k = 0; k < len; k++) {
                    real q = (col[k] != ignored ? b : (real)0) + (col[k] == c ? a : (real)0);
                    row[k] = e[c * step + k] * (q - dot[k]);
                }
            }
        }
    }
}
