// Attention kernels of package cuda (lighttransfer-go), compiled for sm_90 by gen.sh.
//
// Conventions shared by every kernel (see ../doc.go):
//   q, out     float32 [n][heads*D]     token-major, head h of token t at (t*heads+h)*D
//   k, v       bf16    [n][kvheads*D]   query head h uses kv head h / (heads/kvheads)
//   lse        float32 [n][heads]       natural log
//   pos        int32   [slots]          absolute position per cache slot, < 0 = empty
// Scores are kept in the log2 domain: s2 = (q.k) * scale * log2(e); lse = s2max+log2(l) times ln 2.
// Mask: key kp is visible to query qp iff 0 <= kp <= qp and (window == 0 || kp < sink || kp > qp-window).

#include <cuda_bf16.h>
#include <stdint.h>

#define LT_NEG_INF (__int_as_float(0xff800000))
#define LT_LN2 0.6931471805599453f

typedef __nv_bfloat16 bf16;
typedef __nv_bfloat162 bf162;

__device__ __forceinline__ bool lt_visible(int qp, int kp, int sink, int window) {
    if (kp < 0 || kp > qp) return false;
    return window == 0 || kp < sink || kp > qp - window;
}

__device__ __forceinline__ uint32_t lt_pack(float lo, float hi) {
    bf162 p = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&p);
}

// d += a*b for one m16n8k16 bf16 tile with float32 accumulation.
__device__ __forceinline__ void lt_mma(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---------------------------------------------------------------------------------------------
// Prefill: flash-style attention of n queries at positions 0..n-1 over the n keys of the same
// tokens. Block = 4 warps = 64 query rows of one head; key tiles of 64; tensor-core products
// (Q and P rounded to bf16), float32 online softmax. grid (ceil(n/64), heads).

template <int D>
__device__ __forceinline__ void prefill_body(float* __restrict__ out, float* __restrict__ lse,
                                             const float* __restrict__ q, const bf16* __restrict__ k,
                                             const bf16* __restrict__ v, int n, int heads, int kvheads,
                                             float scale2, int sink, int window) {
    constexpr int BM = 64, BN = 64, KS = D + 8, VS = BN + 8, NB = BN / 8, KK = D / 16, DB = D / 8;
    __shared__ __align__(16) bf16 Ks[BN * KS];
    __shared__ __align__(16) bf16 Vt[D * VS];

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int h = blockIdx.y, kvh = h / (heads / kvheads);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BM; // heavy (late) tiles first
    const long qstride = (long)heads * D, kstride = (long)kvheads * D;

    // Stage the Q tile as bf16 in Ks, then keep this warp's 16 rows as A fragments.
    for (int idx = tid; idx < BM * D / 4; idx += 128) {
        int r = idx / (D / 4), c = (idx % (D / 4)) * 4;
        float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
        if (q0 + r < n) x = *reinterpret_cast<const float4*>(q + (q0 + r) * qstride + (long)h * D + c);
        *reinterpret_cast<uint32_t*>(&Ks[r * KS + c]) = lt_pack(x.x, x.y);
        *reinterpret_cast<uint32_t*>(&Ks[r * KS + c + 2]) = lt_pack(x.z, x.w);
    }
    __syncthreads();
    uint32_t qa[KK][4];
    {
        const bf16* r0 = &Ks[(warp * 16 + g) * KS + t4 * 2];
        const bf16* r1 = r0 + 8 * KS;
#pragma unroll
        for (int kk = 0; kk < KK; kk++) {
            qa[kk][0] = *reinterpret_cast<const uint32_t*>(r0 + kk * 16);
            qa[kk][1] = *reinterpret_cast<const uint32_t*>(r1 + kk * 16);
            qa[kk][2] = *reinterpret_cast<const uint32_t*>(r0 + kk * 16 + 8);
            qa[kk][3] = *reinterpret_cast<const uint32_t*>(r1 + kk * 16 + 8);
        }
    }

    float o[DB][4];
#pragma unroll
    for (int i = 0; i < DB; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m0 = LT_NEG_INF, m1 = LT_NEG_INF, l0 = 0.f, l1 = 0.f;

    const int qlo = q0 + warp * 16, qhi = qlo + 15;
    const int qr0 = qlo + g, qr1 = qr0 + 8;
    int ntiles = (min(n, q0 + BM) + BN - 1) / BN;

    for (int kt = 0; kt < ntiles; kt++) {
        const int klo = kt * BN, khi = klo + BN - 1;
        if (window > 0 && klo >= sink && khi <= q0 - window) continue; // invisible to the whole block
        __syncthreads();
        for (int idx = tid; idx < BN * D / 8; idx += 128) { // K: row-major, coalesced
            int r = idx / (D / 8), c = (idx % (D / 8)) * 8;
            uint4 x = make_uint4(0, 0, 0, 0);
            if (klo + r < n) x = *reinterpret_cast<const uint4*>(k + (klo + r) * kstride + (long)kvh * D + c);
            *reinterpret_cast<uint4*>(&Ks[r * KS + c]) = x;
        }
        for (int idx = tid; idx < BN * D / 8; idx += 128) { // V: transposed to Vt[dim][key]
            int r = idx % BN, c = (idx / BN) * 8;
            uint4 x = make_uint4(0, 0, 0, 0);
            if (klo + r < n) x = *reinterpret_cast<const uint4*>(v + (klo + r) * kstride + (long)kvh * D + c);
            const bf16* e = reinterpret_cast<const bf16*>(&x);
#pragma unroll
            for (int i = 0; i < 8; i++) Vt[(c + i) * VS + r] = e[i];
        }
        __syncthreads();
        if (klo > qhi || (window > 0 && klo >= sink && khi <= qlo - window)) continue; // nothing for this warp

        float s[NB][4];
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
            const bf16* kr = &Ks[(nb * 8 + g) * KS + t4 * 2];
#pragma unroll
            for (int kk = 0; kk < KK; kk++)
                lt_mma(s[nb], qa[kk], *reinterpret_cast<const uint32_t*>(kr + kk * 16),
                       *reinterpret_cast<const uint32_t*>(kr + kk * 16 + 8));
        }
        const bool full = khi < n && khi <= qlo && (window == 0 || khi < sink || klo > qhi - window);
        float mx0 = LT_NEG_INF, mx1 = LT_NEG_INF;
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[nb][e] * scale2;
                if (!full) {
                    int kp = klo + nb * 8 + t4 * 2 + (e & 1);
                    int qp = e < 2 ? qr0 : qr1;
                    if (kp >= n || !lt_visible(qp, kp, sink, window)) x = LT_NEG_INF;
                }
                s[nb][e] = x;
            }
            mx0 = fmaxf(mx0, fmaxf(s[nb][0], s[nb][1]));
            mx1 = fmaxf(mx1, fmaxf(s[nb][2], s[nb][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        const float b0 = mn0 == LT_NEG_INF ? 0.f : mn0, b1 = mn1 == LT_NEG_INF ? 0.f : mn1;
        const float a0 = exp2f(m0 - b0), a1 = exp2f(m1 - b1);
        m0 = mn0;
        m1 = mn1;
        float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            s[nb][0] = exp2f(s[nb][0] - b0);
            s[nb][1] = exp2f(s[nb][1] - b0);
            s[nb][2] = exp2f(s[nb][2] - b1);
            s[nb][3] = exp2f(s[nb][3] - b1);
            sum0 += s[nb][0] + s[nb][1];
            sum1 += s[nb][2] + s[nb][3];
        }
        l0 = l0 * a0 + sum0;
        l1 = l1 * a1 + sum1;
#pragma unroll
        for (int i = 0; i < DB; i++) {
            o[i][0] *= a0;
            o[i][1] *= a0;
            o[i][2] *= a1;
            o[i][3] *= a1;
        }
#pragma unroll
        for (int j = 0; j < BN / 16; j++) {
            uint32_t pa[4];
            pa[0] = lt_pack(s[2 * j][0], s[2 * j][1]);
            pa[1] = lt_pack(s[2 * j][2], s[2 * j][3]);
            pa[2] = lt_pack(s[2 * j + 1][0], s[2 * j + 1][1]);
            pa[3] = lt_pack(s[2 * j + 1][2], s[2 * j + 1][3]);
#pragma unroll
            for (int db = 0; db < DB; db++) {
                const bf16* vr = &Vt[(db * 8 + g) * VS + j * 16 + t4 * 2];
                lt_mma(o[db], pa, *reinterpret_cast<const uint32_t*>(vr),
                       *reinterpret_cast<const uint32_t*>(vr + 8));
            }
        }
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
    if (qr0 < n) {
        float* dst = out + qr0 * qstride + (long)h * D + t4 * 2;
#pragma unroll
        for (int db = 0; db < DB; db++)
            *reinterpret_cast<float2*>(dst + db * 8) = make_float2(o[db][0] * i0, o[db][1] * i0);
        if (lse != nullptr && t4 == 0)
            lse[(long)qr0 * heads + h] = l0 > 0.f ? (m0 + log2f(l0)) * LT_LN2 : LT_NEG_INF;
    }
    if (qr1 < n) {
        float* dst = out + qr1 * qstride + (long)h * D + t4 * 2;
#pragma unroll
        for (int db = 0; db < DB; db++)
            *reinterpret_cast<float2*>(dst + db * 8) = make_float2(o[db][2] * i1, o[db][3] * i1);
        if (lse != nullptr && t4 == 0)
            lse[(long)qr1 * heads + h] = l1 > 0.f ? (m1 + log2f(l1)) * LT_LN2 : LT_NEG_INF;
    }
}

#define LT_PREFILL(D)                                                                                \
    extern "C" __global__ void __launch_bounds__(128) lt_prefill_d##D(                               \
        float* out, float* lse, const float* q, const bf16* k, const bf16* v, int n, int heads,      \
        int kvheads, float scale2, int sink, int window) {                                           \
        prefill_body<D>(out, lse, q, k, v, n, heads, kvheads, scale2, sink, window);                \
    }
LT_PREFILL(64)
LT_PREFILL(128)

// ---------------------------------------------------------------------------------------------
// Decode (flash-decoding): one query at position qpos over nslots cache slots. Block (split,
// kvhead, head group) handles up to GM query heads sharing one KV head over a contiguous slot
// range in chunks of CH slots; it writes unnormalised partial outputs plus (max, sum) per head.
// lt_decode_combine merges the splits. 256 threads.

#define LT_CH 256

template <int D, int GM>
__device__ __forceinline__ void decode_body(float* __restrict__ opart, float* __restrict__ mpart,
                                            float* __restrict__ lpart, const float* __restrict__ q,
                                            const bf16* __restrict__ k, const bf16* __restrict__ v,
                                            const int* __restrict__ pos, int nslots, int qpos, int heads,
                                            int kvheads, float scale2, int sink, int window, int per_split) {
    constexpr int DL = D / 8;         // dims per lane in the score phase (8 lanes per key)
    constexpr int NP = LT_CH / 32;    // score passes per chunk (32 keys per pass)
    constexpr int UNR = D == 64 ? 8 : 4; // passes whose loads are issued together
    constexpr int TR = D / 4;         // threads per V row in the PV phase (4 dims each)
    constexpr int KSN = 256 / TR;     // key subsets in the PV phase
    __shared__ float sc[GM][LT_CH];
    __shared__ __align__(16) float red[KSN][GM][D];
    __shared__ float mrun[GM], lrun[GM], alpha[GM];

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, lg = lane & 7;
    const int G = heads / kvheads, kvh = blockIdx.y, g0 = blockIdx.z * GM;
    const int gn = min(GM, G - g0);
    const int h0 = kvh * G + g0;
    const long kstride = (long)kvheads * D;
    const int s0 = blockIdx.x * per_split, s1 = min(nslots, s0 + per_split);

    float qr[GM][DL];
#pragma unroll
    for (int i = 0; i < GM; i++)
#pragma unroll
        for (int d = 0; d < DL; d++) qr[i][d] = i < gn ? q[(long)(h0 + i) * D + lg * DL + d] : 0.f;
    if (tid < GM) {
        mrun[tid] = LT_NEG_INF;
        lrun[tid] = 0.f;
    }
    const int dq = tid % TR, ks = tid / TR;
    float acc[GM][4];
#pragma unroll
    for (int i = 0; i < GM; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;

    for (int c0 = s0; c0 < s1; c0 += LT_CH) {
        const int cl = min(LT_CH, s1 - c0);
        // scores: 8 lanes per key, 4 keys per warp, 32 keys per pass; UNR passes' loads in flight
        for (int pb = 0; pb < NP; pb += UNR) {
            if (pb * 32 >= cl) break;
            uint4 kx[UNR][DL / 8];
            int kp[UNR];
#pragma unroll
            for (int u = 0; u < UNR; u++) {
                const int j = (pb + u) * 32 + warp * 4 + (lane >> 3);
                kp[u] = -1;
#pragma unroll
                for (int w = 0; w < DL / 8; w++) kx[u][w] = make_uint4(0, 0, 0, 0);
                if (j < cl) {
                    const long slot = c0 + j;
                    kp[u] = pos[slot];
                    const bf16* kr = k + slot * kstride + (long)kvh * D + lg * DL;
#pragma unroll
                    for (int w = 0; w < DL / 8; w++) kx[u][w] = *reinterpret_cast<const uint4*>(kr + w * 8);
                }
            }
#pragma unroll
            for (int u = 0; u < UNR; u++) {
                const int j = (pb + u) * 32 + warp * 4 + (lane >> 3);
                float dot[GM];
#pragma unroll
                for (int i = 0; i < GM; i++) dot[i] = 0.f;
#pragma unroll
                for (int w = 0; w < DL / 8; w++) {
                    const bf162* e = reinterpret_cast<const bf162*>(&kx[u][w]);
#pragma unroll
                    for (int x = 0; x < 4; x++) {
                        float2 f = __bfloat1622float2(e[x]);
#pragma unroll
                        for (int i = 0; i < GM; i++)
                            dot[i] = fmaf(qr[i][w * 8 + 2 * x], f.x, fmaf(qr[i][w * 8 + 2 * x + 1], f.y, dot[i]));
                    }
                }
#pragma unroll
                for (int i = 0; i < GM; i++) {
                    dot[i] += __shfl_xor_sync(0xffffffffu, dot[i], 4);
                    dot[i] += __shfl_xor_sync(0xffffffffu, dot[i], 2);
                    dot[i] += __shfl_xor_sync(0xffffffffu, dot[i], 1);
                }
                if (j < cl && lg == 0) {
                    const bool vis = lt_visible(qpos, kp[u], sink, window);
#pragma unroll
                    for (int i = 0; i < GM; i++) sc[i][j] = vis ? dot[i] * scale2 : LT_NEG_INF;
                }
            }
        }
        __syncthreads();
        // softmax bookkeeping: warp i owns head i
        if (warp < gn) {
            float mx = LT_NEG_INF;
            for (int j = lane; j < cl; j += 32) mx = fmaxf(mx, sc[warp][j]);
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float mo = mrun[warp], mn = fmaxf(mo, mx), b = mn == LT_NEG_INF ? 0.f : mn;
            float sum = 0.f;
            for (int j = lane; j < cl; j += 32) {
                float p = exp2f(sc[warp][j] - b);
                sc[warp][j] = p;
                sum += p;
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            __syncwarp();
            if (lane == 0) {
                const float a = exp2f(mo - b);
                alpha[warp] = a;
                lrun[warp] = lrun[warp] * a + sum;
                mrun[warp] = mn;
            }
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < GM; i++) {
            if (i < gn) {
                const float a = alpha[i];
                acc[i][0] *= a;
                acc[i][1] *= a;
                acc[i][2] *= a;
                acc[i][3] *= a;
            }
        }
#pragma unroll 4
        for (int j = ks; j < cl; j += KSN) {
            const long slot = c0 + j;
            uint2 x = *reinterpret_cast<const uint2*>(v + slot * kstride + (long)kvh * D + dq * 4);
            const float2 f0 = __bfloat1622float2(*reinterpret_cast<const bf162*>(&x.x));
            const float2 f1 = __bfloat1622float2(*reinterpret_cast<const bf162*>(&x.y));
#pragma unroll
            for (int i = 0; i < GM; i++) {
                if (i < gn) {
                    const float p = sc[i][j];
                    acc[i][0] = fmaf(p, f0.x, acc[i][0]);
                    acc[i][1] = fmaf(p, f0.y, acc[i][1]);
                    acc[i][2] = fmaf(p, f1.x, acc[i][2]);
                    acc[i][3] = fmaf(p, f1.y, acc[i][3]);
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < GM; i++)
        *reinterpret_cast<float4*>(&red[ks][i][dq * 4]) = make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    __syncthreads();
    for (int t = tid; t < gn * D; t += 256) {
        const int i = t / D, d = t % D;
        float x = 0.f;
#pragma unroll
        for (int u = 0; u < KSN; u++) x += red[u][i][d];
        opart[((long)blockIdx.x * heads + h0 + i) * D + d] = x;
    }
    if (tid < gn) {
        mpart[(long)blockIdx.x * heads + h0 + tid] = mrun[tid];
        lpart[(long)blockIdx.x * heads + h0 + tid] = lrun[tid];
    }
}

#define LT_DECODE(D, GM)                                                                              \
    extern "C" __global__ void __launch_bounds__(256) lt_decode_d##D##_g##GM(                         \
        float* opart, float* mpart, float* lpart, const float* q, const bf16* k, const bf16* v,       \
        const int* pos, int nslots, int qpos, int heads, int kvheads, float scale2, int sink,         \
        int window, int per_split) {                                                                  \
        decode_body<D, GM>(opart, mpart, lpart, q, k, v, pos, nslots, qpos, heads, kvheads, scale2,   \
                           sink, window, per_split);                                                  \
    }
LT_DECODE(64, 1)
LT_DECODE(64, 2)
LT_DECODE(64, 4)
LT_DECODE(64, 8)
LT_DECODE(128, 1)
LT_DECODE(128, 2)
LT_DECODE(128, 4)
LT_DECODE(128, 8)

// lt_decode_combine merges nsplit partial results: grid (heads), block (D).
extern "C" __global__ void lt_decode_combine(float* out, float* lse, const float* opart, const float* mpart,
                                             const float* lpart, int nsplit, int heads, int D) {
    const int h = blockIdx.x, d = threadIdx.x;
    float M = LT_NEG_INF;
    for (int s = 0; s < nsplit; s++) M = fmaxf(M, mpart[s * heads + h]);
    if (M == LT_NEG_INF) {
        out[h * D + d] = 0.f;
        if (lse != nullptr && d == 0) lse[h] = LT_NEG_INF;
        return;
    }
    float L = 0.f, x = 0.f;
    for (int s = 0; s < nsplit; s++) {
        const float w = exp2f(mpart[s * heads + h] - M);
        L += w * lpart[s * heads + h];
        x += w * opart[((long)s * heads + h) * D + d];
    }
    out[h * D + d] = x / L;
    if (lse != nullptr && d == 0) lse[h] = (M + log2f(L)) * LT_LN2;
}

// ---------------------------------------------------------------------------------------------
// Lazy ratio (DESIGN §1): for each of the last `last` queries qi and head h,
// mass = exp(logsumexp_{k in S, k <= qi}(scale q.k) - lse[qi][h]) with
// S = [0, sink) ∪ [n-recent, n). grid (last, heads), block 128. mass [last][heads].

template <int D>
__device__ __forceinline__ void lazy_body(float* __restrict__ mass, const float* __restrict__ q,
                                          const bf16* __restrict__ k, const float* __restrict__ lse, int n,
                                          int heads, int kvheads, float scale2, int sink, int recent, int last) {
    __shared__ float qs[D];
    __shared__ float wm[4], wl[4];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int qi = n - last + blockIdx.x, h = blockIdx.y, kvh = h / (heads / kvheads);
    for (int d = tid; d < D; d += 128) qs[d] = q[((long)qi * heads + h) * D + d];
    __syncthreads();
    const int a1 = min(sink, qi + 1);         // [0, a1)
    const int b0 = max(sink, n - recent);     // [b0, qi]
    const int nb = max(0, qi + 1 - b0);
    const int total = a1 + nb;
    float m = LT_NEG_INF, l = 0.f;
    for (int t = tid; t < total; t += 128) {
        const int kp = t < a1 ? t : b0 + (t - a1);
        const bf16* kr = k + ((long)kp * kvheads + kvh) * D;
        float dot = 0.f;
#pragma unroll
        for (int u = 0; u < D / 8; u++) {
            uint4 x = *reinterpret_cast<const uint4*>(kr + u * 8);
            const bf162* e = reinterpret_cast<const bf162*>(&x);
#pragma unroll
            for (int w = 0; w < 4; w++) {
                float2 f = __bfloat1622float2(e[w]);
                dot = fmaf(qs[u * 8 + 2 * w], f.x, fmaf(qs[u * 8 + 2 * w + 1], f.y, dot));
            }
        }
        const float s = dot * scale2;
        const float mn = fmaxf(m, s);
        l = l * exp2f(m - mn) + exp2f(s - mn);
        m = mn;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float mo = __shfl_xor_sync(0xffffffffu, m, o), lo = __shfl_xor_sync(0xffffffffu, l, o);
        const float mn = fmaxf(m, mo);
        if (mn == LT_NEG_INF) continue;
        l = l * exp2f(m - mn) + lo * exp2f(mo - mn);
        m = mn;
    }
    if (lane == 0) {
        wm[warp] = m;
        wl[warp] = l;
    }
    __syncthreads();
    if (tid == 0) {
        float M = LT_NEG_INF, L = 0.f;
        for (int w = 0; w < 4; w++) {
            const float mn = fmaxf(M, wm[w]);
            if (mn == LT_NEG_INF) continue;
            L = L * exp2f(M - mn) + wl[w] * exp2f(wm[w] - mn);
            M = mn;
        }
        const float full = lse[(long)qi * heads + h];
        mass[blockIdx.x * heads + h] = L > 0.f ? exp2f(M + log2f(L) - full * 1.4426950408889634f) : 0.f;
    }
}

#define LT_LAZY(D)                                                                                   \
    extern "C" __global__ void __launch_bounds__(128) lt_lazy_d##D(                                  \
        float* mass, const float* q, const bf16* k, const float* lse, int n, int heads, int kvheads,  \
        float scale2, int sink, int recent, int last) {                                               \
        lazy_body<D>(mass, q, k, lse, n, heads, kvheads, scale2, sink, recent, last);                \
    }
LT_LAZY(64)
LT_LAZY(128)

// ---------------------------------------------------------------------------------------------
// Cache helpers.

// lt_to_bf16 rounds n floats to bf16 (round to nearest even).
extern "C" __global__ void lt_to_bf16(bf16* dst, const float* src, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

// lt_append stores n tokens (float32 k, v [n][width]) at arrival indices count..count+n-1 with
// positions pos0..pos0+n-1. window == 0: slot = arrival index. Else the first sink arrivals go to
// slots [0, sink), later ones to the ring slot sink + (a-sink) % window; tokens overwritten within
// the same call are skipped.
extern "C" __global__ void lt_append(bf16* kc, bf16* vc, int* pc, const float* ks, const float* vs, int n,
                                     int width, int count, int pos0, int sink, int window) {
    const long total = (long)n * width;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < total; idx += (long)gridDim.x * blockDim.x) {
        const int i = idx / width, e = idx % width;
        const long a = (long)count + i;
        long slot = a;
        if (window > 0 && a >= sink) {
            if ((long)count + n - a > window) continue;
            slot = sink + (a - sink) % window;
        }
        kc[slot * width + e] = __float2bfloat16_rn(ks[idx]);
        vc[slot * width + e] = __float2bfloat16_rn(vs[idx]);
        if (e == 0) pc[slot] = pos0 + i;
    }
}

// ---------------------------------------------------------------------------------------------
// Decode, second form (the default): every warp streams its own keys with a private online
// softmax, so the main loop has no block barrier and keeps U keys' loads in flight per lane
// group. Block = 4 warps; a warp takes 4 keys per step (8 lanes per key, D/8 dims per lane for
// both K and V); blocks cover contiguous slot ranges of per_split slots. Invisible keys (and
// empty slots) are skipped without reading V into the sums. grid (nsplit, kvheads, groups).

template <int D, int GM, int LPK>
__device__ __forceinline__ void decode2_body(float* __restrict__ opart, float* __restrict__ mpart,
                                             float* __restrict__ lpart, const float* __restrict__ q,
                                             const bf16* __restrict__ k, const bf16* __restrict__ v,
                                             const int* __restrict__ pos, int nslots, int qpos, int heads,
                                             int kvheads, float scale2, int sink, int window, int per_split,
                                             int kvfast) {
    constexpr int DL = D / LPK, NV = DL / 8, U = 4, KPW = 32 / LPK, BS = 4 * KPW;
    __shared__ float wm[4][GM], wl[4][GM];
    __shared__ __align__(16) float wacc[4][GM][D];

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, lg = lane % LPK, kq = lane / LPK;
    // kvfast: grid (kvheads, nsplit, groups), so that blocks running together read whole token rows
    const int split = kvfast ? blockIdx.y : blockIdx.x;
    const int G = heads / kvheads, kvh = kvfast ? blockIdx.x : blockIdx.y, g0 = blockIdx.z * GM;
    const int gn = min(GM, G - g0);
    const int h0 = kvh * G + g0;
    const long kstride = (long)kvheads * D;
    const int s0 = split * per_split, s1 = min(nslots, s0 + per_split);

    float qr[GM][DL], acc[GM][DL], m[GM], l[GM];
#pragma unroll
    for (int i = 0; i < GM; i++) {
        m[i] = LT_NEG_INF;
        l[i] = 0.f;
#pragma unroll
        for (int d = 0; d < DL; d++) {
            qr[i][d] = i < gn ? q[(long)(h0 + i) * D + lg * DL + d] * scale2 : 0.f;
            acc[i][d] = 0.f;
        }
    }
    // step t covers slots s0 + t*BS + warp*KPW + kq
    for (int t0 = 0; s0 + t0 * BS < s1; t0 += U) {
        uint4 kx[U][NV], vx[U][NV];
        int kp[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const long slot = s0 + (long)(t0 + u) * BS + warp * KPW + kq;
            kp[u] = -1;
            if (slot < s1) {
                kp[u] = pos[slot];
                const long off = slot * kstride + (long)kvh * D + lg * DL;
#pragma unroll
                for (int w = 0; w < NV; w++) {
                    kx[u][w] = *reinterpret_cast<const uint4*>(k + off + w * 8);
                    vx[u][w] = *reinterpret_cast<const uint4*>(v + off + w * 8);
                }
            } else {
#pragma unroll
                for (int w = 0; w < NV; w++) kx[u][w] = vx[u][w] = make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            float dot[GM];
#pragma unroll
            for (int i = 0; i < GM; i++) dot[i] = 0.f;
#pragma unroll
            for (int w = 0; w < NV; w++) {
                const bf162* e = reinterpret_cast<const bf162*>(&kx[u][w]);
#pragma unroll
                for (int x = 0; x < 4; x++) {
                    const float2 f = __bfloat1622float2(e[x]);
#pragma unroll
                    for (int i = 0; i < GM; i++)
                        dot[i] = fmaf(qr[i][w * 8 + 2 * x], f.x, fmaf(qr[i][w * 8 + 2 * x + 1], f.y, dot[i]));
                }
            }
#pragma unroll
            for (int i = 0; i < GM; i++) {
#pragma unroll
                for (int o = LPK / 2; o > 0; o >>= 1) dot[i] += __shfl_xor_sync(0xffffffffu, dot[i], o);
            }
            if (!lt_visible(qpos, kp[u], sink, window)) continue; // uniform in the lane group
            float vf[DL];
#pragma unroll
            for (int w = 0; w < NV; w++) {
                const bf162* e = reinterpret_cast<const bf162*>(&vx[u][w]);
#pragma unroll
                for (int x = 0; x < 4; x++) {
                    const float2 f = __bfloat1622float2(e[x]);
                    vf[w * 8 + 2 * x] = f.x;
                    vf[w * 8 + 2 * x + 1] = f.y;
                }
            }
#pragma unroll
            for (int i = 0; i < GM; i++) {
                const float s = dot[i];
                if (s > m[i]) {
                    const float a = exp2f(m[i] - s);
                    l[i] *= a;
#pragma unroll
                    for (int d = 0; d < DL; d++) acc[i][d] *= a;
                    m[i] = s;
                }
                const float p = exp2f(s - m[i]);
                l[i] += p;
#pragma unroll
                for (int d = 0; d < DL; d++) acc[i][d] = fmaf(p, vf[d], acc[i][d]);
            }
        }
    }
    // merge the KPW lane groups of the warp
#pragma unroll
    for (int i = 0; i < GM; i++) {
        float M = m[i];
#pragma unroll
        for (int o = LPK; o < 32; o <<= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
        const float a = M == LT_NEG_INF ? 0.f : exp2f(m[i] - M);
        l[i] *= a;
#pragma unroll
        for (int o = LPK; o < 32; o <<= 1) l[i] += __shfl_xor_sync(0xffffffffu, l[i], o);
#pragma unroll
        for (int d = 0; d < DL; d++) {
            float x = acc[i][d] * a;
#pragma unroll
            for (int o = LPK; o < 32; o <<= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
            acc[i][d] = x;
        }
        m[i] = M;
    }
    if (kq == 0) {
#pragma unroll
        for (int i = 0; i < GM; i++)
#pragma unroll
            for (int d = 0; d < DL; d++) wacc[warp][i][lg * DL + d] = acc[i][d];
        if (lg == 0) {
#pragma unroll
            for (int i = 0; i < GM; i++) {
                wm[warp][i] = m[i];
                wl[warp][i] = l[i];
            }
        }
    }
    __syncthreads();
    for (int t = tid; t < gn * D; t += 128) {
        const int i = t / D, d = t % D;
        float M = LT_NEG_INF;
#pragma unroll
        for (int w = 0; w < 4; w++) M = fmaxf(M, wm[w][i]);
        float L = 0.f, x = 0.f;
        if (M != LT_NEG_INF) {
#pragma unroll
            for (int w = 0; w < 4; w++) {
                const float a = exp2f(wm[w][i] - M);
                L += a * wl[w][i];
                x += a * wacc[w][i][d];
            }
        }
        opart[((long)split * heads + h0 + i) * D + d] = x;
        if (d == 0) {
            mpart[(long)split * heads + h0 + i] = M;
            lpart[(long)split * heads + h0 + i] = L;
        }
    }
}

#define LT_DECODE2(D, GM)                                                                             \
    extern "C" __global__ void __launch_bounds__(128) lt_decode2_d##D##_g##GM(                        \
        float* opart, float* mpart, float* lpart, const float* q, const bf16* k, const bf16* v,       \
        const int* pos, int nslots, int qpos, int heads, int kvheads, float scale2, int sink,         \
        int window, int per_split, int kvfast) {                                                      \
        decode2_body<D, GM, 8>(opart, mpart, lpart, q, k, v, pos, nslots, qpos, heads, kvheads,       \
                               scale2, sink, window, per_split, kvfast);                              \
    }
// Third form: 16 lanes per key for head dim 128 (half the registers per lane, more warps per SM).
#define LT_DECODE3(D, GM)                                                                             \
    extern "C" __global__ void __launch_bounds__(128, 4) lt_decode3_d##D##_g##GM(                     \
        float* opart, float* mpart, float* lpart, const float* q, const bf16* k, const bf16* v,       \
        const int* pos, int nslots, int qpos, int heads, int kvheads, float scale2, int sink,         \
        int window, int per_split, int kvfast) {                                                      \
        decode2_body<D, GM, 16>(opart, mpart, lpart, q, k, v, pos, nslots, qpos, heads, kvheads,      \
                                scale2, sink, window, per_split, kvfast);                             \
    }
LT_DECODE2(64, 1)
LT_DECODE2(64, 2)
LT_DECODE2(64, 4)
LT_DECODE2(64, 8)
LT_DECODE2(128, 1)
LT_DECODE2(128, 2)
LT_DECODE2(128, 4)
LT_DECODE3(128, 1)
LT_DECODE3(128, 2)
LT_DECODE3(128, 4)

// lt_decode_combine2 merges nsplit (<= 1024) partial results with the splits spread over the
// block: grid (heads), block 256.
extern "C" __global__ void __launch_bounds__(256) lt_decode_combine2(float* out, float* lse, const float* opart,
                                                                     const float* mpart, const float* lpart,
                                                                     int nsplit, int heads, int D) {
    __shared__ float w[1024];
    __shared__ float red[256];
    __shared__ float sM, sL;
    const int h = blockIdx.x, tid = threadIdx.x;
    float M = LT_NEG_INF;
    for (int s = tid; s < nsplit; s += 256) M = fmaxf(M, mpart[s * heads + h]);
    red[tid] = M;
    __syncthreads();
    for (int o = 128; o > 0; o >>= 1) {
        if (tid < o) red[tid] = fmaxf(red[tid], red[tid + o]);
        __syncthreads();
    }
    M = red[0];
    __syncthreads();
    if (M == LT_NEG_INF) {
        for (int d = tid; d < D; d += 256) out[h * D + d] = 0.f;
        if (lse != nullptr && tid == 0) lse[h] = LT_NEG_INF;
        return;
    }
    float L = 0.f;
    for (int s = tid; s < nsplit; s += 256) {
        const float a = exp2f(mpart[s * heads + h] - M);
        w[s] = a;
        L += a * lpart[s * heads + h];
    }
    red[tid] = L;
    __syncthreads();
    for (int o = 128; o > 0; o >>= 1) {
        if (tid < o) red[tid] += red[tid + o];
        __syncthreads();
    }
    if (tid == 0) {
        sL = red[0];
        sM = M;
    }
    __syncthreads();
    const int groups = 256 / D, d = tid % D, gi = tid / D;
    float x = 0.f;
    if (gi < groups)
        for (int s = gi; s < nsplit; s += groups) x += w[s] * opart[((long)s * heads + h) * D + d];
    __syncthreads();
    red[tid] = x;
    __syncthreads();
    if (tid < D) {
        float y = 0.f;
        for (int g = 0; g < groups; g++) y += red[g * D + tid];
        out[h * D + tid] = y / sL;
        if (lse != nullptr && tid == 0) lse[h] = (sM + log2f(sL)) * LT_LN2;
    }
}

// ---------------------------------------------------------------------------------------------
// Prefill, second form (the default): 8 warps = 128 query rows per block, K and V tiles copied
// with cp.async into two stages (the next tile loads while this one is computed), V fragments
// read with ldmatrix.trans. Same semantics and outputs as lt_prefill_d*. grid (ceil(n/128), heads).

__device__ __forceinline__ void lt_cp16(void* smem, const void* gmem, int bytes) {
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(gmem), "r"(bytes));
}

template <int D, int BN>
__device__ __forceinline__ void prefill2_body(float* __restrict__ out, float* __restrict__ lse,
                                              const float* __restrict__ q, const bf16* __restrict__ k,
                                              const bf16* __restrict__ v, int n, int heads, int kvheads,
                                              float scale2, int sink, int window) {
    constexpr int BM = 128, KS = D + 8, NB = BN / 8, KK = D / 16, DB = D / 8, TILE = BN * KS;
    static_assert(4 * TILE >= BM * KS, "Q staging must fit in the K/V stages");
    __shared__ __align__(16) bf16 sm[4 * TILE]; // K stage 0, K stage 1, V stage 0, V stage 1

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int h = blockIdx.y, kvh = h / (heads / kvheads);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BM;
    const long qstride = (long)heads * D, kstride = (long)kvheads * D;

    for (int idx = tid; idx < BM * D / 4; idx += 256) {
        int r = idx / (D / 4), c = (idx % (D / 4)) * 4;
        float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
        if (q0 + r < n) x = *reinterpret_cast<const float4*>(q + (q0 + r) * qstride + (long)h * D + c);
        *reinterpret_cast<uint32_t*>(&sm[r * KS + c]) = lt_pack(x.x, x.y);
        *reinterpret_cast<uint32_t*>(&sm[r * KS + c + 2]) = lt_pack(x.z, x.w);
    }
    __syncthreads();
    uint32_t qa[KK][4];
    {
        const bf16* r0 = &sm[(warp * 16 + g) * KS + t4 * 2];
        const bf16* r1 = r0 + 8 * KS;
#pragma unroll
        for (int kk = 0; kk < KK; kk++) {
            qa[kk][0] = *reinterpret_cast<const uint32_t*>(r0 + kk * 16);
            qa[kk][1] = *reinterpret_cast<const uint32_t*>(r1 + kk * 16);
            qa[kk][2] = *reinterpret_cast<const uint32_t*>(r0 + kk * 16 + 8);
            qa[kk][3] = *reinterpret_cast<const uint32_t*>(r1 + kk * 16 + 8);
        }
    }
    __syncthreads();

    float o[DB][4];
#pragma unroll
    for (int i = 0; i < DB; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m0 = LT_NEG_INF, m1 = LT_NEG_INF, l0 = 0.f, l1 = 0.f;
    const int qlo = q0 + warp * 16, qhi = qlo + 15;
    const int qr0 = qlo + g, qr1 = qr0 + 8;
    const int ntiles = (min(n, q0 + BM) + BN - 1) / BN;
    // tiles [skipLo, skipHi) are invisible to every query of the block
    int skipLo = 0, skipHi = 0;
    if (window > 0) {
        skipLo = (sink + BN - 1) / BN;
        skipHi = q0 - window + 1 > 0 ? (q0 - window + 1) / BN : 0;
    }
    auto next = [&](int kt) { return (kt >= skipLo && kt < skipHi) ? skipHi : kt; };
    auto issue = [&](int kt, int st) {
        const int klo = kt * BN;
        bf16* Kd = sm + st * TILE;
        bf16* Vd = sm + (2 + st) * TILE;
        for (int idx = tid; idx < BN * D / 8; idx += 256) {
            const int r = idx / (D / 8), c = (idx % (D / 8)) * 8;
            const bool ok = klo + r < n;
            const long off = ok ? (klo + r) * kstride + (long)kvh * D + c : 0;
            lt_cp16(&Kd[r * KS + c], k + off, ok ? 16 : 0);
            lt_cp16(&Vd[r * KS + c], v + off, ok ? 16 : 0);
        }
        asm volatile("cp.async.commit_group;\n" ::);
    };

    int kt = next(0), st = 0;
    if (kt < ntiles) issue(kt, 0);
    while (kt < ntiles) {
        const int nk = next(kt + 1);
        if (nk < ntiles) {
            issue(nk, st ^ 1);
            asm volatile("cp.async.wait_group 1;\n" ::);
        } else {
            asm volatile("cp.async.wait_group 0;\n" ::);
        }
        __syncthreads();
        const int klo = kt * BN, khi = klo + BN - 1;
        const bf16* Ks = sm + st * TILE;
        const bf16* Vs = sm + (2 + st) * TILE;
        if (!(klo > qhi || (window > 0 && klo >= sink && khi <= qlo - window))) {
            float s[NB][4];
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
                s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
                const bf16* kr = &Ks[(nb * 8 + g) * KS + t4 * 2];
#pragma unroll
                for (int kk = 0; kk < KK; kk++)
                    lt_mma(s[nb], qa[kk], *reinterpret_cast<const uint32_t*>(kr + kk * 16),
                           *reinterpret_cast<const uint32_t*>(kr + kk * 16 + 8));
            }
            const bool full = khi < n && khi <= qlo && (window == 0 || khi < sink || klo > qhi - window);
            float mx0 = LT_NEG_INF, mx1 = LT_NEG_INF;
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float x = s[nb][e] * scale2;
                    if (!full) {
                        int kp = klo + nb * 8 + t4 * 2 + (e & 1);
                        int qp = e < 2 ? qr0 : qr1;
                        if (kp >= n || !lt_visible(qp, kp, sink, window)) x = LT_NEG_INF;
                    }
                    s[nb][e] = x;
                }
                mx0 = fmaxf(mx0, fmaxf(s[nb][0], s[nb][1]));
                mx1 = fmaxf(mx1, fmaxf(s[nb][2], s[nb][3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
            const float b0 = mn0 == LT_NEG_INF ? 0.f : mn0, b1 = mn1 == LT_NEG_INF ? 0.f : mn1;
            const float a0 = exp2f(m0 - b0), a1 = exp2f(m1 - b1);
            m0 = mn0;
            m1 = mn1;
            float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
                s[nb][0] = exp2f(s[nb][0] - b0);
                s[nb][1] = exp2f(s[nb][1] - b0);
                s[nb][2] = exp2f(s[nb][2] - b1);
                s[nb][3] = exp2f(s[nb][3] - b1);
                sum0 += s[nb][0] + s[nb][1];
                sum1 += s[nb][2] + s[nb][3];
            }
            l0 = l0 * a0 + sum0;
            l1 = l1 * a1 + sum1;
#pragma unroll
            for (int i = 0; i < DB; i++) {
                o[i][0] *= a0;
                o[i][1] *= a0;
                o[i][2] *= a1;
                o[i][3] *= a1;
            }
            const int mi = lane >> 3, rr = lane & 7;
#pragma unroll
            for (int j = 0; j < BN / 16; j++) {
                uint32_t pa[4];
                pa[0] = lt_pack(s[2 * j][0], s[2 * j][1]);
                pa[1] = lt_pack(s[2 * j][2], s[2 * j][3]);
                pa[2] = lt_pack(s[2 * j + 1][0], s[2 * j + 1][1]);
                pa[3] = lt_pack(s[2 * j + 1][2], s[2 * j + 1][3]);
#pragma unroll
                for (int db = 0; db < DB; db += 2) {
                    const bf16* vp = &Vs[(j * 16 + (mi & 1) * 8 + rr) * KS + (db + (mi >> 1)) * 8];
                    const uint32_t a = (uint32_t)__cvta_generic_to_shared(vp);
                    uint32_t r0, r1, r2, r3;
                    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                                 : "r"(a));
                    lt_mma(o[db], pa, r0, r1);
                    lt_mma(o[db + 1], pa, r2, r3);
                }
            }
        }
        __syncthreads();
        kt = nk;
        st ^= 1;
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
    if (qr0 < n) {
        float* dst = out + qr0 * qstride + (long)h * D + t4 * 2;
#pragma unroll
        for (int db = 0; db < DB; db++)
            *reinterpret_cast<float2*>(dst + db * 8) = make_float2(o[db][0] * i0, o[db][1] * i0);
        if (lse != nullptr && t4 == 0)
            lse[(long)qr0 * heads + h] = l0 > 0.f ? (m0 + log2f(l0)) * LT_LN2 : LT_NEG_INF;
    }
    if (qr1 < n) {
        float* dst = out + qr1 * qstride + (long)h * D + t4 * 2;
#pragma unroll
        for (int db = 0; db < DB; db++)
            *reinterpret_cast<float2*>(dst + db * 8) = make_float2(o[db][2] * i1, o[db][3] * i1);
        if (lse != nullptr && t4 == 0)
            lse[(long)qr1 * heads + h] = l1 > 0.f ? (m1 + log2f(l1)) * LT_LN2 : LT_NEG_INF;
    }
}

#define LT_PREFILL2(NAME, D, BN, MINB)                                                               \
    extern "C" __global__ void __launch_bounds__(256, MINB) NAME(                              \
        float* out, float* lse, const float* q, const bf16* k, const bf16* v, int n, int heads,      \
        int kvheads, float scale2, int sink, int window) {                                           \
        prefill2_body<D, BN>(out, lse, q, k, v, n, heads, kvheads, scale2, sink, window);           \
    }
LT_PREFILL2(lt_prefill2_d64, 64, 64, 1)
LT_PREFILL2(lt_prefill2_d128, 128, 32, 1)
// two resident blocks per SM (registers capped at 128)
LT_PREFILL2(lt_prefill3_d64, 64, 64, 2)
