/* The register-blocked micro-kernels of _blocked_conv.h for one instruction set.
 *
 * Included once per instruction set with BC_SUFFIX (name suffix), BC_TARGET (a function attribute
 * or nothing), BC_LANES (floats per vector), BC_FBT and BC_QV (filters and vectors of output positions
 * per block of the forward kernel) and BC_FBG and BC_TB (filters and taps per block of the weight
 * gradient), BC_EVEN and BC_ODD (the even and odd lane indices of two vectors, for BC_SHUFFLE) and BC_ZIPLO and
 * BC_ZIPHI (the lanes of two vectors interleaved: the first and the second half) defined,
 * each filter block a divisor of BC_FB; it undefines them at the end.
 *
 * GCC's vector extensions keep the accumulators in registers: the loops over them have constant
 * trip counts and are unrolled, so each block of BC_FBT filters x BC_QV vectors of positions is
 * summed over every tap without touching memory (measured: with the same loops over a plain float
 * array GCC kept the accumulators on the stack and ran 3-9x slower).
 */
#define BC_CAT2(a, b) a##b
#define BC_CAT(a, b) BC_CAT2(a, b)
#define BC_VEC BC_CAT(bc_vec_, BC_SUFFIX)
#define BC_VECU BC_CAT(bc_vecu_, BC_SUFFIX)
#define BC_IVEC BC_CAT(bc_ivec_, BC_SUFFIX)

typedef float BC_VEC __attribute__((vector_size(4 * BC_LANES)));
typedef float BC_VECU __attribute__((vector_size(4 * BC_LANES), aligned(4)));
typedef int BC_IVEC __attribute__((vector_size(4 * BC_LANES)));

/* out[f*Lq + q] = sum over t < K of w[f*K + t] * xp[off[t] + q], for f < Fp (a multiple of BC_FBT)
 * and q < Lq (a multiple of BC_LANES * BC_QV). Every tap adds in the same order (t = 0, 1, ...)
 * for every position, so the result does not depend on how positions are blocked. */
BC_TARGET static void BC_CAT(bc_taps_, BC_SUFFIX)(const float *restrict xp, const float *restrict w,
                                                  const long *restrict off, float *restrict out, long Fp, long K,
                                                  long Lq) {
    for (long f0 = 0; f0 < Fp; f0 += BC_FBT) {
        const float *wf = w + f0 * K;
        for (long q0 = 0; q0 < Lq; q0 += BC_LANES * BC_QV) {
            BC_VEC acc[BC_FBT][BC_QV];
#pragma GCC unroll 16
            for (int f = 0; f < BC_FBT; f++)
#pragma GCC unroll 16
                for (int u = 0; u < BC_QV; u++) acc[f][u] = (BC_VEC){0};
            for (long t = 0; t < K; t++) {
                const float *xr = xp + off[t] + q0;
                BC_VEC xv[BC_QV];
#pragma GCC unroll 16
                for (int u = 0; u < BC_QV; u++) xv[u] = *(const BC_VECU *)(xr + BC_LANES * u);
#pragma GCC unroll 16
                for (int f = 0; f < BC_FBT; f++) {
                    float wv = wf[f * K + t];
#pragma GCC unroll 16
                    for (int u = 0; u < BC_QV; u++) acc[f][u] += wv * xv[u];
                }
            }
#pragma GCC unroll 16
            for (int f = 0; f < BC_FBT; f++)
#pragma GCC unroll 16
                for (int u = 0; u < BC_QV; u++) *(BC_VECU *)(out + (f0 + f) * Lq + q0 + BC_LANES * u) = acc[f][u];
        }
    }
}

/* dwv[(f*Kp + t)*BC_LANES + l] += sum over samples s < S and q < Lq with q % BC_LANES == l of
 * dyf[s*ds + f*Lq + q] * xp[s*xs + off[t] + q], for f < Fp (a multiple of BC_FBT) and t < Kp (a multiple of
 * BC_TB); Lq a multiple of BC_LANES. The partial sums stay in registers across the S samples. */
BC_TARGET static void BC_CAT(bc_grad_, BC_SUFFIX)(const float *restrict xp, long xs, const float *restrict dyf, long ds,
                                                  long S, const long *restrict off, float *restrict dwv, long Fp,
                                                  long Kp, long Lq) {
    for (long f0 = 0; f0 < Fp; f0 += BC_FBG) {
        for (long t0 = 0; t0 < Kp; t0 += BC_TB) {
            BC_VEC acc[BC_FBG][BC_TB];
#pragma GCC unroll 16
            for (int f = 0; f < BC_FBG; f++)
#pragma GCC unroll 16
                for (int k = 0; k < BC_TB; k++) acc[f][k] = (BC_VEC){0};
            for (long s = 0; s < S; s++) {
                const float *xb = xp + s * xs, *db = dyf + s * ds + f0 * Lq;
                for (long q = 0; q < Lq; q += BC_LANES) {
                    BC_VEC d[BC_FBG];
#pragma GCC unroll 16
                    for (int f = 0; f < BC_FBG; f++) d[f] = *(const BC_VECU *)(db + f * Lq + q);
#pragma GCC unroll 16
                    for (int k = 0; k < BC_TB; k++) {
                        BC_VEC xv = *(const BC_VECU *)(xb + off[t0 + k] + q);
#pragma GCC unroll 16
                        for (int f = 0; f < BC_FBG; f++) acc[f][k] += d[f] * xv;
                    }
                }
            }
#pragma GCC unroll 16
            for (int f = 0; f < BC_FBG; f++)
#pragma GCC unroll 16
                for (int k = 0; k < BC_TB; k++) {
                    BC_VECU *p = (BC_VECU *)(dwv + ((f0 + f) * Kp + t0 + k) * BC_LANES);
                    *p += acc[f][k];
                }
        }
    }
}

/* sum of a[0..n) (n a multiple of BC_LANES), lane by lane, then over the lanes: a fixed order */
BC_TARGET static float BC_CAT(bc_sum_, BC_SUFFIX)(const float *restrict a, long n) {
    BC_VEC s = (BC_VEC){0};
    for (long q = 0; q < n; q += BC_LANES) s += *(const BC_VECU *)(a + q);
    float t = 0.0f;
    for (int l = 0; l < BC_LANES; l++) t += s[l];
    return t;
}

/* out[i] = d[i] * (y[i] > 0 ? 1 : 0) for i < n: ReLU's input gradient, as the reference's d * mask
 * (so an inf or NaN d stays NaN where y <= 0), with a compare and an AND, never a branch */
BC_TARGET static void BC_CAT(bc_mask_, BC_SUFFIX)(const float *restrict d, const float *restrict y,
                                                  float *restrict out, long n) {
    const BC_VEC one = (BC_VEC){0} + 1.0f, zero = (BC_VEC){0};
    long i = 0;
    for (; i + BC_LANES <= n; i += BC_LANES) {
        BC_VEC yv = *(const BC_VECU *)(y + i), dv = *(const BC_VECU *)(d + i);
        BC_VEC keep = (BC_VEC)((BC_IVEC)one & (yv > zero));
        *(BC_VECU *)(out + i) = dv * keep;
    }
    for (; i < n; i++) out[i] = d[i] * (y[i] > 0 ? 1.0f : 0.0f);
}

/* y[f, oh, :OW] = out[f*Lq + oh*Wp + :OW] + b[f], and max(., 0) when relu (NaN kept, as np.maximum) */
BC_TARGET static void BC_CAT(bc_bias_, BC_SUFFIX)(const float *restrict out, long Lq, long Wp, const float *restrict b,
                                                  long F, long OH, long OW, int relu, float *restrict y) {
    const BC_VEC zero = (BC_VEC){0};
    for (long f = 0; f < F; f++)
        for (long oh = 0; oh < OH; oh++) {
            const float *src = out + f * Lq + oh * Wp;
            float *dst = y + (f * OH + oh) * OW, bias = b[f];
            long k = 0;
            for (; k + BC_LANES <= OW; k += BC_LANES) {
                BC_VEC v = *(const BC_VECU *)(src + k) + bias;
                if (relu) v = (BC_VEC)((BC_IVEC)v & ~(v < zero)); /* v < 0 -> +0; NaN compares false: kept */
                *(BC_VECU *)(dst + k) = v;
            }
            for (; k < OW; k++) {
                float v = src[k] + bias;
                dst[k] = (relu && v < 0) ? 0.0f : v;
            }
        }
}

/* max(a, b) lane by lane, a NaN in either winning (the pool kernel's rule), as bit selects: no branch */
BC_TARGET static inline BC_VEC BC_CAT(bc_maxn_, BC_SUFFIX)(BC_VEC a, BC_VEC b) {
    BC_IVEC take_a = (a > b) | (a != a);
    return (BC_VEC)(((BC_IVEC)a & take_a) | ((BC_IVEC)b & ~take_a));
}

/* y[f, i, j] = max over the 2x2 window (2i.., 2j..) of out[f*Lq + oh*Wp + ow], + b[f], then max(., 0) when
 * relu: the unfused bias (and ReLU) pass followed by a 2x2 stride-2 max-pool, bit for bit (rounding is
 * monotonic: the max of the four sums is the sum of their max; ReLU commutes with max too). A NaN wins
 * the window, as in the pool kernel. PH = OH / 2, PW = OW / 2 (an odd last row or column is dropped).
 * Vectors all the way: the two rows' max, then the even and odd lanes' (a shuffle each); the pooled rows
 * are short (LeNet-5: 14 and 5), so a row's last vector reads past it into the scratch (out has
 * BC_POOL_SLACK floats to spare) and stores only its first PW - j lanes.
 * win (training; NULL in inference): win[f, i, j] = the window's winner, 0..3 in row-major order, as the
 * unfused pool's argmax: the first of the four sums equal to the max, or the first NaN; with relu, 0 where
 * the max is <= 0 (the ReLU made all four equal). */
BC_TARGET static void BC_CAT(bc_bias_pool_, BC_SUFFIX)(const float *restrict out, long Lq, long Wp,
                                                       const float *restrict b, long F, long PH, long PW, int relu,
                                                       float *restrict y, unsigned char *restrict win) {
    const BC_VEC zero = (BC_VEC){0};
    const BC_IVEC one = (BC_IVEC){0} + 1, two = one + 1, three = two + 1;
    for (long f = 0; f < F; f++) {
        const BC_VEC bias = zero + b[f];
        for (long i = 0; i < PH; i++) {
            const float *r0 = out + f * Lq + 2 * i * Wp, *r1 = r0 + Wp;
            float *dst = y + (f * PH + i) * PW;
            for (long j = 0; j < PW; j += BC_LANES) {
                BC_VEC u0 = *(const BC_VECU *)(r0 + 2 * j), u1 = *(const BC_VECU *)(r0 + 2 * j + BC_LANES);
                BC_VEC l0 = *(const BC_VECU *)(r1 + 2 * j), l1 = *(const BC_VECU *)(r1 + 2 * j + BC_LANES);
                BC_VEC v0 = BC_CAT(bc_maxn_, BC_SUFFIX)(u0, l0), v1 = BC_CAT(bc_maxn_, BC_SUFFIX)(u1, l1);
                BC_VEC m = BC_CAT(bc_maxn_, BC_SUFFIX)(BC_SHUFFLE(v0, v1, BC_EVEN), BC_SHUFFLE(v0, v1, BC_ODD)) + bias;
                long n = j + BC_LANES <= PW ? BC_LANES : PW - j;
                if (win) { /* the winner, scanning d, c, b, a so the first match is kept */
                    BC_VEC sa = BC_SHUFFLE(u0, u1, BC_EVEN) + bias, sb = BC_SHUFFLE(u0, u1, BC_ODD) + bias;
                    BC_VEC sc = BC_SHUFFLE(l0, l1, BC_EVEN) + bias;
                    BC_IVEC k = three, e;
                    e = (sc == m) | (sc != sc);
                    k = (two & e) | (k & ~e);
                    e = (sb == m) | (sb != sb);
                    k = (one & e) | (k & ~e);
                    e = (sa == m) | (sa != sa);
                    k = k & ~e;
                    if (relu) k = k & ~(m <= zero);
                    unsigned char *wd = win + (f * PH + i) * PW + j;
                    for (long l = 0; l < n; l++) wd[l] = (unsigned char)k[l];
                }
                if (relu) m = (BC_VEC)((BC_IVEC)m & ~(m < zero)); /* m < 0 -> +0; NaN compares false: kept */
                if (n == BC_LANES)
                    *(BC_VECU *)(dst + j) = m;
                else
                    memcpy(dst + j, &m, (size_t)n * sizeof(float));
            }
        }
    }
}

/* One sample's dy in the flat layout (F planes of Lq, rows of Wp) from the gradient of its 2x2 stride-2
 * max-pool: dp (F, OH/2, OW/2) goes to each window's winner win (0..3, row-major), masked by p > 0 when p
 * is not NULL (the ReLU before the pool: p is the pooled output, the winner's value) as bc_mask does; the
 * other three positions, an odd last row and column get +0. Columns OW.. are not written. A vector of
 * windows at a time: four masked copies of dp, interleaved into the two rows; a row's last vector goes
 * through zero-filled copies (dp, win and p are the caller's arrays: no reading past them). */
BC_TARGET static void BC_CAT(bc_unpool_, BC_SUFFIX)(const float *restrict dp, const unsigned char *restrict win,
                                                    const float *restrict p, long F, long OH, long OW, long Lq,
                                                    long Wp, float *restrict dyf) {
    const BC_VEC zero = (BC_VEC){0}, one = zero + 1.0f;
    const BC_IVEC izero = (BC_IVEC){0}, k1 = izero + 1, k2 = k1 + 1, k3 = k2 + 1;
    const long PH = OH / 2, PW = OW / 2;
    for (long f = 0; f < F; f++) {
        float *plane = dyf + f * Lq;
        for (long i = 0; i < PH; i++) {
            float *r0 = plane + 2 * i * Wp, *r1 = r0 + Wp;
            const long o = (f * PH + i) * PW;
            for (long j = 0; j < PW; j += BC_LANES) {
                const long n = j + BC_LANES <= PW ? BC_LANES : PW - j;
                const float *gs = dp + o + j, *ps = p ? p + o + j : NULL;
                const unsigned char *ws = win + o + j;
                float gb[BC_LANES] = {0}, pb[BC_LANES] = {0};
                unsigned char wb[BC_LANES] = {0};
                if (n < BC_LANES) {
                    memcpy(gb, gs, (size_t)n * sizeof(float));
                    memcpy(wb, ws, (size_t)n);
                    if (p) memcpy(pb, ps, (size_t)n * sizeof(float));
                    gs = gb, ws = wb, ps = p ? pb : NULL;
                }
                BC_VEC g = *(const BC_VECU *)gs;
                if (ps) g = g * (BC_VEC)((BC_IVEC)one & (*(const BC_VECU *)ps > zero));
                BC_IVEC k;
#pragma GCC unroll 16
                for (int l = 0; l < BC_LANES; l++) k[l] = ws[l];
                BC_VEC v0 = (BC_VEC)((BC_IVEC)g & (k == izero)), v1 = (BC_VEC)((BC_IVEC)g & (k == k1));
                BC_VEC v2 = (BC_VEC)((BC_IVEC)g & (k == k2)), v3 = (BC_VEC)((BC_IVEC)g & (k == k3));
                BC_VEC out[4] = {BC_SHUFFLE(v0, v1, BC_ZIPLO), BC_SHUFFLE(v0, v1, BC_ZIPHI), BC_SHUFFLE(v2, v3, BC_ZIPLO),
                                 BC_SHUFFLE(v2, v3, BC_ZIPHI)};
                memcpy(r0 + 2 * j, out, (size_t)(2 * n) * sizeof(float));
                memcpy(r1 + 2 * j, out + 2, (size_t)(2 * n) * sizeof(float));
            }
            if (OW & 1) r0[OW - 1] = r1[OW - 1] = 0.0f;
        }
        if (OH & 1) memset(plane + (OH - 1) * Wp, 0, (size_t)OW * sizeof(float));
    }
}

#undef BC_VEC
#undef BC_VECU
#undef BC_IVEC
#undef BC_SUFFIX
#undef BC_TARGET
#undef BC_LANES
#undef BC_QV
#undef BC_TB
#undef BC_FBT
#undef BC_FBG
#undef BC_EVEN
#undef BC_ODD
#undef BC_ZIPLO
#undef BC_ZIPHI
