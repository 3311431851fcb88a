"""Every tunable of the fast kernels, in one place, with the measurement behind it.

Modules read these as ``config.NAME`` at call time (so a test can patch one value here) or,
inside Numba kernels, as compile-time constants (this file is part of the compiled-kernel
fingerprint of ``_jit.py``: changing a value recompiles the cached kernels). All measurements
are on the 2-core target (AMD EPYC, 32 MiB L3) unless stated; none is re-measured here.
"""

# --- serial or parallel (read by ``parallel.py``, the one decision) --------------------------
# Below this many elements every kernel runs serially: waking the thread team costs a few
# microseconds, more than a pass this short takes. Also the size fastnet.warmup() calls every
# kernel at, so from here up the parallel variants get compiled (``parallel.prepare``). The
# Cython (OpenMP) kernels and BatchNorm/dropout use it as their threshold (not measured per
# kernel: the value predates the per-kind thresholds below).
PARALLEL_MIN_ELEMENTS = 1 << 16
# Memory-bound passes (ReLU and LeakyReLU, every backward product, optimizer updates, MSE), with
# the other core busy (serial / parallel / NumPy medians): RMSprop 401k elements 115 us / 941 us
# / 452 us, 4M 1.7 ms / 17 ms / 26 ms. One core streams them at cache speed; threads only pay for
# arrays far out of cache, on idle cores.
MEMORY_BOUND_MIN = 1 << 22
# Passes with exp/tanh/log polynomials (sigmoid, tanh, GELU, softmax, the losses): ~10x more
# arithmetic per element. tanh 65k 20 / 69 / 25 us, 262k 76 / 102 / 98 us, 1M 295 / 222 / 380 us.
COMPUTE_BOUND_MIN = 1 << 19
# Dense's bias/activation and db passes sit between BLAS calls. At 128x512 (65536 elements) a
# pass takes ~6 us serially and is no faster on 2 threads, while waking Numba's workers leaves
# them spinning against BLAS's own threads in the next GEMM (measured: dense 128x784->512
# fwd+bwd 5% slower). So they go parallel only when long enough to matter on their own.
DENSE_PASS_MIN = max(PARALLEL_MIN_ELEMENTS, 1 << 21)
# BatchNorm and dropout: not measured separately (see PARALLEL_MIN_ELEMENTS).
BATCHNORM_MIN = PARALLEL_MIN_ELEMENTS
DROPOUT_MIN = PARALLEL_MIN_ELEMENTS
# Cython im2col/col2im, layout copies and pooling (OpenMP team).
OMP_MIN_ELEMENTS = PARALLEL_MIN_ELEMENTS

# --- how parallel work is cut -----------------------------------------------------------------
# A GEMM above fast/gemm.py's MIN_WORK is cut into this many row (or column) blocks at every thread count, so its
# bits never depend on the count (fast/gemm.py says why); 2 for the 2-core machines measured (more threads idle).
GEMM_BLOCKS = 2
# Elements per parallel block (elementwise kernels, optimizer updates, dropout; rows of about
# this many elements for softmax, dense and batchnorm eval): big enough to amortise scheduling,
# small enough to balance two threads.
BLOCK = 1 << 14
# Elements per pass of the multi-loop activations (sigmoid, tanh) and the losses' exp passes:
# three temporaries of CHUNK elements stay in L1/L2 between the loops.
CHUNK = 2048
# Channel blocks per thread in BatchNorm train/backward (threads never share a channel's
# statistics): a few per thread so uneven channel counts still balance.
BATCHNORM_BLOCKS_PER_THREAD = 4
# Dense backward's db pass is cut into column blocks (no two threads share a db entry) of at
# least this many columns, about four blocks per thread.
DENSE_MIN_BLOCK_COLS = 16

# --- convolution (fast/conv.py) -------------------------------------------------------------
# Fewer filters than this use per-sample ("stacked") GEMMs: a GEMM with only a few output rows
# over a very wide matrix is memory-bound and was measured ~20x slower in OpenBLAS than the
# same work split into cache-sized per-sample products.
STACKED_MAX_FILTERS = 16
# Stacked path: each chunk pays fixed costs (OpenMP regions, Python, the bias pass), so chunks
# are not cut to L2 size: on LeNet's conv 1->6 5x5 fwd+bwd took 2.6 ms at batch 64 with 1 MiB
# chunks (10 samples), 1.8 ms with 2 MiB and ~1.25 ms from 8 MiB up (the whole batch);
# batch 256: 10.4 / 7.2 / 4.9 ms.
STACKED_CHUNK_BYTES = 8 << 20
# Wide path: one GEMM per chunk; a few MiB keep the GEMM efficient and the columns in L3.
# Conv 32->64 3x3, 128x32x26x26: fwd / bwd 28.5 / 61.8 ms with 64 MiB chunks, 21.2 / 45.1 ms
# with 8 MiB, flat from 6 to 12 MiB, slower again at 2 MiB.
WIDE_CHUNK_BYTES = 8 << 20

# Conv batches are cut into at least this many sample chunks (when the batch has that many samples):
# the chunks are the tasks the thread team shares (``_kernels/tasks.py``), end to end (im2col,
# GEMM, layout pass), so a fixed count that balances over 1, 2 or 4 threads with dynamic
# scheduling. Not a function of the thread count, so results are not either.
CONV_MIN_CHUNKS = 8

# --- direct convolution (fast/direct.py) -----------------------------------------------------
# Stride-1 convolutions whose im2col GEMM would have an inner dimension K = C*KH*KW of at most this
# go to the direct kernel (None: never): with so short a K the GEMM is bound by writing and reading
# the columns. Measured 2026-12-01 (interleaved wall-clock medians of 15, float32, ReLU fused, dX only
# where a later layer would need it; ms im2col -> direct):
#     layer (K)                         2 threads fwd / bwd             1 thread fwd / bwd
#     LeNet-5 1->6 5x5 pad 2, b256 (25)  4.40 -> 2.92 / 9.72 -> 6.30    6.46 -> 5.13 / 16.33 -> 12.08
#     Keras CNN 1->32 3x3, b128 (9)      5.29 -> 3.77 / 21.85 -> 8.04   5.44 -> 5.88 / 31.62 -> 12.24
#     ResNet-20 stem 1->16 3x3, b128 (9) 2.74 -> 2.22 / 11.98 -> 4.02   3.36 -> 3.39 / 18.64 -> 6.79
#     3->16 3x3 pad 1 32x32 +dX (27)     5.02 -> 4.32 / 22.86 -> 14.87  8.46 -> 8.36 / 41.47 -> 29.74
#     LeNet-5 6->16 5x5 +dX (150)        6.81 -> 6.85 / 12.70 -> 23.21  (im2col kept)
#     3->64 7x7 pad 3 56x56 +dX (147)    14.51 -> 24.61 / 41.63 -> 98.81 (im2col kept)
# The benchmark of the first rows: python -m pytest benchmarks/bench_kernels.py -k "conv 1->" --benchmark-only
DIRECT_MAX_K = 32

# --- register-blocked direct convolution (fast/blocked.py) -------------------------------------
# float32 stride-1 convolutions (padding below the kernel size) with at most BLOCKED_MAX_CF input x
# output channels C*F go to the blocked C kernels first, forward and backward (None: never); of the
# layers Winograd takes, only those with at most BLOCKED_WINOGRAD_CF (now the same limit: see below).
# BLOCKED_GROUP_BYTES: samples packed together for the weight gradient, so its partial sums stay in
# registers across them (1 sample, 32 KiB, 128 KiB, 1 MiB
# measured: 128 KiB best or level everywhere, ResNet-20's 64->64 7x7 backward 23.7 -> 17.5 ms at 1 thread).
# Measured 2026-12-01 18:05 UTC, the final kernels, by what is now benchmarks/conv_engines.py
# (`PYTHONPATH=src python benchmarks/conv_engines.py --threads 2 --steps`; 2-core AVX-512 VM, wall-clock
# medians of 7 x 3 interleaved repeats, float32, fused ReLU, dx where a later layer needs it; ms from the engine the
# layer used before -> blocked; the 1-thread run fell in a slow phase of the machine):
#     layer                                2 threads fwd / bwd            1 thread fwd / bwd
#     LeNet-5 1->6 5x5 pad 2, b256          1.96 -> 0.93 / 4.83 -> 1.38    5.58 -> 3.16 / 14.13 -> 3.78
#     LeNet-5 6->16 5x5 +dX, b256           5.10 -> 1.40 / 11.26 -> 5.26   10.84 -> 3.99 / 26.79 -> 11.74
#     Keras CNN 1->32 3x3, b128             3.45 -> 1.55 / 6.95 -> 2.73    6.54 -> 3.65 / 13.59 -> 4.99
#     Keras CNN 32->64 3x3 +dX (Winograd)   25.21 -> 21.72 / 61.10 -> 54.06  50.68 -> 49.37 / 124.80 -> 127.22
#     ResNet-20 16->16 28x28 +dX            8.67 -> 4.48 / 18.33 -> 10.08  19.66 -> 10.20 / 46.33 -> 20.99
#     ResNet-20 32->32 14x14 +dX            6.07 -> 4.05 / 14.46 -> 8.96   13.73 -> 9.98 / 34.75 -> 21.13
#     ResNet-20 64->64 7x7 +dX (im2col)     8.53 -> 3.81 / 14.18 -> 13.06  19.23 -> 10.98 / 44.21 -> 30.54
#     ResNet-20 stem 1->16 3x3, b128        1.72 -> 0.93 / 3.52 -> 1.24    3.92 -> 2.31 / 8.10 -> 3.23
# The Keras CNN's 32->64 stayed on Winograd then (BLOCKED_WINOGRAD_CF = 1024): blocked won at 2 threads in that run
# (and lost in others, e.g. 39.8 against 45.5 ms backward), and lost at 1 thread. But the "blocked" figures for that
# layer were Winograd's again: the benchmark lifted BLOCKED_MAX_CF only, and BLOCKED_WINOGRAD_CF kept the layer on
# Winograd (fixed 2026-12-02). Measured for real on 2026-12-02 (2-core AMD EPYC, Zen 5, AVX-512; `conv_engines.py
# --rounds 5 --layers "Keras CNN 32->64 3x3"`, b128, ms Winograd -> blocked), with OpenBLAS as the machine sets it
# (OPENBLAS_CORETYPE=Haswell) at 2 threads: fwd 18.44 -> 8.94, bwd 40.00 -> 22.26; with OpenBLAS's own choice
# (SkylakeX kernels) at 2 threads: fwd 15.42 -> 9.09, bwd 34.01 -> 22.77; at 1 thread 19.92 -> 15.64, 46.88 -> 38.30.
# So BLOCKED_WINOGRAD_CF = BLOCKED_MAX_CF: Winograd keeps only layers wider than the blocked kernels take.
# Whole training steps, the same process switching BLOCKED_MAX_CF between None and 4096 (medians of
# 8 interleaved, 3 for ResNet-20; 2 / 1 threads): LeNet-5 b64 1.57x / 1.76x, b256 2.04x / 2.11x,
# predict b256 2.01x / 2.05x; Keras CNN 0.98x / 1.05x, predict 1.11x / 1.04x; ResNet-20 1.32x / 1.32x.
BLOCKED_MAX_CF = 4096
BLOCKED_WINOGRAD_CF = 4096
BLOCKED_GROUP_BYTES = 128 << 10
# Blocked layers whose output has at most BLOCKED_GEMM_DW_MAX_OUTPUT pixels (OH*OW; None: never) take dx from the
# blocked kernels and dW, db from im2col and one GEMM per chunk (fast/conv.py): over a 7x7 plane the kernels'
# weight gradient keeps few positions per partial sum. Measured 2026-12-02 (2-core Intel Xeon VM, AVX-512;
# `conv_engines.py --switch gemm-dw`, the limit lifted to every layer; b128 (LeNet b256), backward ms kernels' own dW
# -> GEMM dW, 2 / 1 threads): ResNet-20 64->64 7x7 8.84 -> 7.91 / 15.51 -> 13.91; 32->32 14x14 5.97 -> 8.84 /
# 11.06 -> 15.30; Keras CNN 32->64 26x26 34.6 -> 44.5 / 66.5 -> 77.8; LeNet-5 6->16 10x10 3.11 -> 4.88 / 5.95 -> 8.41.
# So the 7x7 plane only (8x8 was not measured).
BLOCKED_GEMM_DW_MAX_OUTPUT = 49
# Strided float32 layers whose kernel is no larger than the stride (ResNet-20's 1x1 stride-2 shortcuts) run on the
# blocked kernels by their stride phases (fast/strided.py), when the phased layer is one they take (BLOCKED_MAX_CF
# over its nh*nw*C channels); False: im2col. Measured 2026-12-02 (as above, `conv_engines.py --switch strided`, b128,
# 2 threads, fwd / bwd ms im2col -> phases): 16->32 1x1 28x28 0.86 -> 0.90 / 4.61 -> 2.00; 32->64 1x1 14x14
# 0.57 -> 0.78 / 2.16 -> 1.70. A 3x3 stride-2 layer by its phases (a 2x2 kernel on 4C channels, 1.78x the FLOPs):
# 16->32 28x28 4.48 -> 4.36 / 10.98 -> 10.92, no gain (the phase copy took 1.4 ms; measured before strided.applies
# kept kernels larger than the stride out, which it now does, so they stay on im2col).
STRIDED_PHASES = True

# --- Winograd F(2x2, 3x3) (fast/winograd.py) --------------------------------------------------
# Stride-1 3x3 convolutions with at least WINOGRAD_MIN_CHANNELS input and output channels and
# outputs of at least WINOGRAD_MIN_OUTPUT x WINOGRAD_MIN_OUTPUT go through Winograd; the rest (and
# WINOGRAD_MIN_CHANNELS = None) through im2col. Measured 2026-12-01 on the 2-core machine while a
# training run kept both cores busy (so: single thread, time.process_time medians of 15 interleaved
# repeats after warm-up, float32, batch 128, fwd + bwd with dx; GFLOP/s counts direct-convolution
# FLOPs, 3 x 2*N*F*C*9*OH*OW; a 1024^3 float32 GEMM ran at ~85 GFLOP/s meanwhile):
#     layer                    im2col ms (GFLOP/s)   Winograd ms (GFLOP/s)
#     16->16 28x28 pad 1       60.7 (22.8)           40.7 (34.1)   ResNet-20 stage 1
#     32->32 14x14 pad 1       39.8 (34.8)           25.7 (53.9)   stage 2
#     64->64  7x7  pad 1       28.8 (48.2)           29.1 (47.7)   stage 3: no gain (tiles overhang 8x8 over 7x7)
#     32->64 26x26 pad 0      148.5 (54.9)          112.1 (72.8)   M4's second convolution
#     64->64  8x8 / 9x9 pad 1  44.6 / 54.5          34.2 / 46.3
#     1->32, 1->16, 3->16 28x28 (no dx), 8->8 28x28: Winograd 1.1-3.5x slower (too little GEMM work per
#     transformed element)
# The benchmark of the same comparison (wall clock, for an idle machine):
#     python -m pytest benchmarks/bench_kernels.py -k conv_engine --benchmark-only --fn-threads 1
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_OUTPUT = 8
# Winograd runs each task's samples in passes of V and M (16 * (C + F) * tiles floats per sample)
# of at most this many bytes, so the GEMMs and the transforms find them in cache. Whole fwd + bwd,
# same conditions as above, 256 KiB / 512 KiB / 1 MiB / 2 MiB: 16->16 28x28 45.9 / 44.8 / 39.8 / 42.9 ms,
# 32->32 14x14 39.9 / 31.3 / 27.6 / 35.6, 64->64 7x7 36.8 / 33.7 / 33.3 / 40.0, 32->64 26x26 120 / 116 /
# 116 / 127 (and 139 ms with 8 MiB passes).
WINOGRAD_CHUNK_BYTES = 1 << 20

# --- scratch memory (workspace.py) ----------------------------------------------------------
# Default byte limit of the per-thread convolution workspace (FASTNET_WORKSPACE_MB overrides):
# a memory bound, not a speed knob. The chunk sizes above (8 MiB) are what keeps the columns in
# cache; 64 MiB only caps the peak for layers whose single sample needs more than a chunk.
DEFAULT_WORKSPACE_BYTES = 64 << 20
