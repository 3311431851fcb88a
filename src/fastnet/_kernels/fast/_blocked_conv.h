/* Register-blocked direct convolution, stride 1, float32 (the C side of _blocked_conv.pyx).
 *
 * Layout (as fast/_direct_planes.py): each input channel is one flat padded plane of row width Wp;
 * output pixel (oh, ow) sits at q = oh*Wp + ow and reads tap (c, i, j) at off[t] = c*plane + i*Wp + j,
 * so one offset per tap serves the whole plane. Positions ow >= OW of each row are computed and
 * dropped. Unlike the Numba passes, which add one tap to one filter's whole plane at a time (a load,
 * an FMA and a store per element), the kernels here keep a block of 8 filters x 32 positions (AVX-512;
 * 4 x 16 with AVX2) in vector registers across all C*KH*KW taps: one broadcast weight per filter and a vector load of
 * input per position block, the FMAs in between.
 *
 * - forward: y = b + sum_t w_t x_(q + off_t), ReLU optional, a 2x2 stride-2 max-pool optional (in training
 *   with each window's winner, bc_bias_pool; backward then unpools one sample at a time, bc_unpool);
 * - input gradient: the same kernel on the ReLU-masked dy, bordered by (KH-1-ph, KW-1-pw), with
 *   the weights transposed (C <-> F) and flipped;
 * - weight gradient: per filter block and tap block, vector partial sums over positions, kept
 *   per lane across the chunk's samples and summed lane by lane at the end (a fixed order).
 *
 * Three builds of the micro-kernels (_blocked_body.h): AVX-512, AVX2+FMA and baseline, chosen once
 * at run time by the CPU's features, so the extension needs no -march flag. Results can differ in
 * the last bits between instruction sets (FMA rounding, lane count), never between thread counts:
 * each sample's arithmetic does not depend on the chunk it is in, and the caller sums the chunks'
 * weight-gradient parts in a fixed order.
 */
#include <stdlib.h>
#include <string.h>

#define BC_FB 8      /* F (and C for dx) is padded to a multiple of it: every build's filter blocks divide it */
#define BC_QALIGN 32 /* Lq is a multiple of it (every build's position block divides it) */
#define BC_KALIGN 4  /* Kp: taps padded to a multiple of every build's tap block */

/* GCC and Clang have the vector extensions; on x86 they also build for AVX2 and AVX-512 and pick at run
 * time. Any other compiler gets no kernels: bc_available() says so and fastnet uses its other engines. */
#if defined(__GNUC__) && !defined(BC_NO_VECTORS) /* BC_NO_VECTORS: check the fallback compiles */
#define BC_AVAILABLE 1
#if (defined(__x86_64__) || defined(__i386__)) && !defined(BC_PORTABLE_ONLY)
#define BC_X86 1
#endif
#else
#define BC_AVAILABLE 0
#endif

static int bc_available(void) { return BC_AVAILABLE; }

static long bc_round(long v, long to) { return (v + to - 1) / to * to; }

/* One stride-1 correlation: input planes (C, H, W) bordered by (ph, pw), kernel KH x KW. */
typedef struct {
    long C, H, W, KH, KW, ph, pw;
    long OH, OW, Wp, Lq, plane; /* plane: floats per padded channel, room for the last tap's reads */
} bc_geom;

static bc_geom bc_geometry(long C, long H, long W, long KH, long KW, long ph, long pw) {
    bc_geom g;
    g.C = C, g.H = H, g.W = W, g.KH = KH, g.KW = KW, g.ph = ph, g.pw = pw;
    g.OH = H + 2 * ph - KH + 1;
    g.OW = W + 2 * pw - KW + 1;
    g.Wp = W + 2 * pw;
    g.Lq = bc_round(g.OH * g.Wp, BC_QALIGN);
    g.plane = bc_round(g.Lq + (KH - 1) * g.Wp + KW, 16);
    return g;
}

#if BC_AVAILABLE

/* Lanes picked from two vectors by constant indices: GCC 12+ and Clang have __builtin_shufflevector,
 * older GCC __builtin_shuffle with an index vector. */
#if defined(__clang__) || __GNUC__ >= 12
#define BC_SHUFFLE(a, b, idx) __builtin_shufflevector(a, b, idx)
#else
#define BC_SHUFFLE(a, b, idx) __builtin_shuffle(a, b, (BC_IVEC){idx})
#endif
#define BC_POOL_SLACK 64 /* floats past a forward scratch's end that bc_bias_pool's last vectors may read */

#ifdef BC_X86
#define BC_SUFFIX avx512
#define BC_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#define BC_LANES 16
#define BC_FBT 8
#define BC_QV 2
#define BC_FBG 4
#define BC_TB 4
#define BC_EVEN 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define BC_ODD 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define BC_ZIPLO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define BC_ZIPHI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#include "_blocked_body.h"

#define BC_SUFFIX avx2
#define BC_TARGET __attribute__((target("avx2,fma")))
#define BC_LANES 8
#define BC_FBT 4
#define BC_QV 2
#define BC_FBG 4
#define BC_TB 2
#define BC_EVEN 0, 2, 4, 6, 8, 10, 12, 14
#define BC_ODD 1, 3, 5, 7, 9, 11, 13, 15
#define BC_ZIPLO 0, 8, 1, 9, 2, 10, 3, 11
#define BC_ZIPHI 4, 12, 5, 13, 6, 14, 7, 15
#include "_blocked_body.h"
#endif

#define BC_SUFFIX base
#define BC_TARGET
#define BC_LANES 4
#define BC_FBT 4
#define BC_QV 2
#define BC_FBG 4
#define BC_TB 2
#define BC_EVEN 0, 2, 4, 6
#define BC_ODD 1, 3, 5, 7
#define BC_ZIPLO 0, 4, 1, 5
#define BC_ZIPHI 2, 6, 3, 7
#include "_blocked_body.h"

static int bc_isa_cached = -1;

/* The best build this CPU runs: 2 AVX-512, 1 AVX2 with FMA, 0 baseline. */
static int bc_isa_best(void) {
#ifdef BC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw"))
        return 2; /* every feature the AVX-512 build was compiled for */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

/* The build in use: the best one, unless bc_use_isa chose a lower one (the tests run every build). */
static int bc_isa(void) {
    if (bc_isa_cached < 0) bc_isa_cached = bc_isa_best();
    return bc_isa_cached;
}

/* Use build isa (at most the best this CPU runs); returns the one used. */
static int bc_use_isa(int isa) {
    int best = bc_isa_best();
    bc_isa_cached = isa < 0 ? 0 : (isa > best ? best : isa);
    return bc_isa_cached;
}

static long bc_lanes(void) { return bc_isa() == 2 ? 16 : (bc_isa() == 1 ? 8 : 4); }

/* name##_<build>(args) for the build in use */
#ifdef BC_X86
#define BC_DISPATCH(name, ...)                                                                                   \
    (bc_isa() == 2 ? name##_avx512(__VA_ARGS__) : (bc_isa() == 1 ? name##_avx2(__VA_ARGS__) : name##_base(__VA_ARGS__)))
#else
#define BC_DISPATCH(name, ...) name##_base(__VA_ARGS__)
#endif

static void bc_taps(const float *xp, const float *w, const long *off, float *out, long Fp, long K, long Lq) {
    BC_DISPATCH(bc_taps, xp, w, off, out, Fp, K, Lq);
}

static void bc_grad(const float *xp, long xs, const float *dyf, long ds, long S, const long *off, float *dwv, long Fp,
                    long Kp, long Lq) {
    BC_DISPATCH(bc_grad, xp, xs, dyf, ds, S, off, dwv, Fp, Kp, Lq);
}

static float bc_sum(const float *a, long n) { return BC_DISPATCH(bc_sum, a, n); }

static void bc_mask(const float *d, const float *y, float *out, long n) { BC_DISPATCH(bc_mask, d, y, out, n); }

static void bc_bias(const float *out, long Lq, long Wp, const float *b, long F, long OH, long OW, int relu, float *y) {
    BC_DISPATCH(bc_bias, out, Lq, Wp, b, F, OH, OW, relu, y);
}

static void bc_bias_pool(const float *out, long Lq, long Wp, const float *b, long F, long PH, long PW, int relu,
                         float *y, unsigned char *win) {
    BC_DISPATCH(bc_bias_pool, out, Lq, Wp, b, F, PH, PW, relu, y, win);
}

static void bc_unpool(const float *dp, const unsigned char *win, const float *p, long F, long OH, long OW, long Lq,
                      long Wp, float *dyf) {
    BC_DISPATCH(bc_unpool, dp, win, p, F, OH, OW, Lq, Wp, dyf);
}

static void bc_offsets(const bc_geom *g, long *off, long Kp) {
    long t = 0;
    for (long c = 0; c < g->C; c++)
        for (long i = 0; i < g->KH; i++)
            for (long j = 0; j < g->KW; j++) off[t++] = c * g->plane + i * g->Wp + j;
    for (; t < Kp; t++) off[t] = 0; /* padding taps read valid memory; their results are dropped */
}

/* Copy sample planes (C, H, W) into the padded planes; the border was zeroed once and stays zero. */
static void bc_pack(const float *x, const bc_geom *g, float *xp) {
    for (long c = 0; c < g->C; c++)
        for (long h = 0; h < g->H; h++)
            memcpy(xp + c * g->plane + (g->ph + h) * g->Wp + g->pw, x + (c * g->H + h) * g->W, g->W * sizeof(float));
}

/* Zeroed scratch (the kernels' vector loads and stores need no alignment). */
static float *bc_alloc(long n) { return (float *)calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }

/* y[n] (F, OH, OW) = b + conv(x[n]) (ReLU when relu) for the m samples x (m, C, H, W); w is
 * (Fp, C*KH*KW) with rows F.. zero. pool: y[n] is (F, OH/2, OW/2), the 2x2 stride-2 max-pool of that
 * (the full-size output is never written), and win (NULL, or shaped as y) each window's winner
 * (bc_bias_pool). Returns 0, or -1 if scratch could not be allocated. */
static int bc_forward(const float *x, long m, bc_geom g, const float *w, const float *b, long F, long Fp, int relu,
                      int pool, float *y, unsigned char *win) {
    long K = g.C * g.KH * g.KW;
    float *xp = bc_alloc(g.C * g.plane), *out = bc_alloc(Fp * g.Lq + BC_POOL_SLACK);
    long *off = (long *)malloc((size_t)(K > 0 ? K : 1) * sizeof(long));
    if (!xp || !out || !off) {
        free(xp), free(out), free(off);
        return -1;
    }
    bc_offsets(&g, off, K);
    for (long n = 0; n < m; n++) {
        bc_pack(x + n * g.C * g.H * g.W, &g, xp);
        bc_taps(xp, w, off, out, Fp, K, g.Lq);
        long pp = n * F * (g.OH / 2) * (g.OW / 2);
        if (pool)
            bc_bias_pool(out, g.Lq, g.Wp, b, F, g.OH / 2, g.OW / 2, relu, y + pp, win ? win + pp : NULL);
        else
            bc_bias(out, g.Lq, g.Wp, b, F, g.OH, g.OW, relu, y + n * F * g.OH * g.OW);
    }
    free(xp), free(out), free(off);
    return 0;
}

/* Weight and bias gradients of m samples (added into dw (F, C*KH*KW) and db (F), which the caller
 * zeroed) and, when dx is not NULL, the input gradient dx (m, C, H, W). dy (m, F, OH, OW) is masked
 * by y > 0 when relu (a NaN y masks too, as the reference). win not NULL: the layer was followed by a
 * fused 2x2 stride-2 max-pool; dy, y and win are (m, F, OH/2, OW/2): the pool's gradient, its output and
 * its winners (bc_unpool). w2 is (Cp, F*KH*KW), the weights
 * transposed and flipped, rows C.. zero. Samples go in groups of at most group_floats floats of packed
 * input and dy, so dW's partial sums stay in registers across a group. Returns 0, or -1 if scratch could not be allocated. */
static int bc_backward(const float *dy, const float *y, int relu, const float *x, long m, bc_geom g, long F,
                       float *dw, float *db, const float *w2, long Cp, float *dx, long group_floats,
                       const unsigned char *win) {
    long K = g.C * g.KH * g.KW, Kp = bc_round(K, BC_KALIGN), Fp = bc_round(F, BC_FB), L = bc_lanes();
    long P = g.OH * g.OW, xs = g.C * g.plane, ds = Fp * g.Lq;
    long group = group_floats / (xs + ds);
    group = group < 1 ? 1 : (group > m ? m : group);
    /* the input gradient: a correlation over dy's planes bordered by (KH-1-ph, KW-1-pw) */
    bc_geom g2 = bc_geometry(F, g.OH, g.OW, g.KH, g.KW, g.KH - 1 - g.ph, g.KW - 1 - g.pw);
    long K2 = F * g.KH * g.KW;
    float *xp = bc_alloc(group * xs), *dyf = bc_alloc(group * ds), *dwv = bc_alloc(Fp * Kp * L);
    float *dyp = dx ? bc_alloc(F * g2.plane) : NULL, *out2 = dx ? bc_alloc(Cp * g2.Lq) : NULL;
    long PP = (g.OH / 2) * (g.OW / 2), DP = win ? PP : P; /* dy's floats per filter plane */
    float *md = relu && !win ? bc_alloc(F * P) : NULL; /* one sample's masked dy */
    long *off = (long *)malloc((size_t)Kp * sizeof(long)), *off2 = (long *)malloc((size_t)(K2 > 0 ? K2 : 1) * sizeof(long));
    if (!xp || !dyf || !dwv || !off || !off2 || (dx && (!dyp || !out2)) || (relu && !win && !md)) {
        free(xp), free(dyf), free(dwv), free(dyp), free(out2), free(off), free(off2), free(md);
        return -1;
    }
    bc_offsets(&g, off, Kp);
    bc_offsets(&g2, off2, K2);
    for (long n0 = 0; n0 < m; n0 += group) {
        long S = m - n0 < group ? m - n0 : group;
        for (long s = 0; s < S; s++) {
            long n = n0 + s;
            const float *dyn = dy + n * F * DP;
            float *dyfs = dyf + s * ds;
            if (win) {
                bc_unpool(dyn, win + n * F * PP, relu ? y + n * F * PP : NULL, F, g.OH, g.OW, g.Lq, g.Wp, dyfs);
            } else if (relu) {
                bc_mask(dyn, y + n * F * P, md, F * P);
                dyn = md;
            }
            for (long f = 0; f < F; f++) { /* dy (masked) in the flat layout; the dropped positions stay zero */
                if (!win)
                    for (long oh = 0; oh < g.OH; oh++)
                        memcpy(dyfs + f * g.Lq + oh * g.Wp, dyn + (f * g.OH + oh) * g.OW, g.OW * sizeof(float));
                db[f] += bc_sum(dyfs + f * g.Lq, g.Lq);
            }
            bc_pack(x + n * g.C * g.H * g.W, &g, xp + s * xs);
            if (dx) {
                for (long f = 0; f < F; f++)
                    for (long oh = 0; oh < g.OH; oh++)
                        memcpy(dyp + f * g2.plane + (g2.ph + oh) * g2.Wp + g2.pw, dyfs + f * g.Lq + oh * g.Wp,
                               g.OW * sizeof(float));
                bc_taps(dyp, w2, off2, out2, Cp, K2, g2.Lq);
                float *dxn = dx + n * g.C * g.H * g.W;
                for (long c = 0; c < g.C; c++)
                    for (long h = 0; h < g.H; h++)
                        memcpy(dxn + (c * g.H + h) * g.W, out2 + c * g2.Lq + h * g2.Wp, g.W * sizeof(float));
            }
        }
        bc_grad(xp, xs, dyf, ds, S, off, dwv, Fp, Kp, g.Lq);
    }
    for (long f = 0; f < F; f++)
        for (long t = 0; t < K; t++) {
            const float *v = dwv + (f * Kp + t) * L;
            float s = 0.0f;
            for (long l = 0; l < L; l++) s += v[l];
            dw[f * K + t] += s;
        }
    free(xp), free(dyf), free(dwv), free(dyp), free(out2), free(off), free(off2), free(md);
    return 0;
}

#else /* no vector extensions: no kernels (bc_available() is 0 and fastnet never calls these) */

static int bc_isa(void) { return 0; }
static int bc_isa_best(void) { return 0; }
static int bc_use_isa(int isa) { return 0; }
static long bc_lanes(void) { return 4; }
static int bc_forward(const float *x, long m, bc_geom g, const float *w, const float *b, long F, long Fp, int relu,
                      int pool, float *y, unsigned char *win) {
    return -2;
}
static int bc_backward(const float *dy, const float *y, int relu, const float *x, long m, bc_geom g, long F,
                       float *dw, float *db, const float *w2, long Cp, float *dx, long group_floats,
                       const unsigned char *win) {
    return -2;
}

#endif
