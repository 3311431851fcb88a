# cython: language_level=3, boundscheck=False, wraparound=False
"""Flush-to-zero / denormals-are-zero for the calling thread and for the OpenMP thread pool.

x86-64: MXCSR bits FTZ (0x8000) and DAZ (0x0040). AArch64: FPCR.FZ (bit 24), which does both.
Elsewhere ``supported()`` is False and the setters do nothing.
"""
from cython.parallel cimport prange

cdef extern from *:
    """
    #if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    #include <xmmintrin.h>
    #define FN_FP_SUPPORTED 1
    static unsigned int fn_fp_mask(void) { return 0x8040u; }
    static unsigned int fn_fp_get(void) { return _mm_getcsr(); }
    static void fn_fp_put(unsigned int v) { _mm_setcsr(v); }
    #elif defined(__aarch64__)
    #define FN_FP_SUPPORTED 1
    static unsigned int fn_fp_mask(void) { return 1u << 24; }
    static unsigned int fn_fp_get(void) { unsigned long long v; __asm__ __volatile__("mrs %0, fpcr" : "=r"(v)); return (unsigned int)v; }
    static void fn_fp_put(unsigned int v) { unsigned long long w = v; __asm__ __volatile__("msr fpcr, %0" : : "r"(w)); }
    #else
    #define FN_FP_SUPPORTED 0
    static unsigned int fn_fp_mask(void) { return 0u; }
    static unsigned int fn_fp_get(void) { return 0u; }
    static void fn_fp_put(unsigned int v) { (void)v; }
    #endif
    static void fn_fp_set_flush(int on) {
        unsigned int v = fn_fp_get();
        unsigned int nv = on ? (v | fn_fp_mask()) : (v & ~fn_fp_mask());
        if (nv != v) fn_fp_put(nv);
    }
    static int fn_fp_flush_on(void) { return FN_FP_SUPPORTED && (fn_fp_get() & fn_fp_mask()) == fn_fp_mask(); }
    """
    int FN_FP_SUPPORTED
    void fn_fp_set_flush(int on) noexcept nogil
    int fn_fp_flush_on() noexcept nogil


def supported():
    """True when this CPU architecture has a flush-to-zero mode this module can set."""
    return bool(FN_FP_SUPPORTED)


def set_current_thread(bint on):
    """Set or clear flush-to-zero + denormals-are-zero in the calling thread only."""
    fn_fp_set_flush(on)


def current_thread_on():
    """Whether flush-to-zero + denormals-are-zero are both set in the calling thread."""
    return bool(fn_fp_flush_on())


def set_openmp_threads(bint on, int nthreads):
    """Set the mode in every thread of the calling thread's OpenMP team of ``nthreads``.

    static schedule with chunk 1 over ``nthreads`` iterations gives each team member exactly
    one iteration. Returns how many team members ended with the mode as requested.
    """
    cdef int i, ok = 0, flag = 1 if on else 0
    if nthreads < 1:
        nthreads = 1
    for i in prange(nthreads, nogil=True, num_threads=nthreads, schedule="static", chunksize=1):
        fn_fp_set_flush(flag)
        ok += (fn_fp_flush_on() == flag)
    return ok
