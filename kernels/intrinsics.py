"""LLVM intrinsics the fused kernels call from compiled code (numba.extending.intrinsic).

- `cycles()`: the CPU's cycle counter (llvm.readcyclecounter: the TSC on x86, a few ns).
- `prefetch(X, r, c)`: a read prefetch of the cache line holding X[r, c] into every cache
  level (llvm.prefetch, read, locality 3, data); a hint, never a fault, whatever the index
  (the address is only computed, not checked). X is a 2-D C-contiguous array.
- `address(a)`: the address of an array's first element (int), for alignment.
- `atomic_add(a, i, v)`, `atomic_load(a, i)`, `compare_swap(a, i, old, new)` on an int64
  array (sequentially consistent), and `pause()` (the x86 spin-wait hint): what the
  fused epoch's thread barrier is made of.
- `gemm_microkernel(M, A, ...)`: an M x NB tile of C += alpha * A @ B kept in vector
  registers over the whole reduction (below), the core of numba_fused's two big products.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (int64), read inside compiled code."""

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = builder.module.declare_intrinsic("llvm.readcyclecounter", fnty=fnty)
        return builder.call(fn, [])

    return types.int64(), codegen


@intrinsic
def prefetch(typingctx, X, r, c):
    """Prefetch the cache line of X[r, c] (X a 2-D array; r, c integers)."""
    if not (isinstance(X, types.Array) and X.ndim == 2):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        r_, c_ = (context.cast(builder, v, t, types.intp)
                  for v, t in zip(args[1:], signature.args[1:]))
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [r_, c_],
                                       wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(X, r, c), codegen


@intrinsic
def address(typingctx, a):
    """The address of array a's first element, as an int (intp)."""
    if not isinstance(a, types.Array):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(data, context.get_value_type(types.intp))

    return types.intp(a), codegen


def _int64_slot(context, builder, signature, args):
    """A pointer to a[i] of a 1-D int64 array (no bounds check)."""
    ary = context.make_array(signature.args[0])(context, builder, args[0])
    i = context.cast(builder, args[1], signature.args[1], types.intp)
    return builder.gep(ary.data, [i])


def _is_int64_vector(a):
    return isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.int64


@intrinsic
def atomic_add(typingctx, a, i, v):
    """a[i] += v atomically (sequentially consistent); returns the old a[i]. a: 1-D int64."""
    if not _is_int64_vector(a):
        return None

    def codegen(context, builder, signature, args):
        v_ = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", _int64_slot(context, builder, signature, args), v_,
                                  "seq_cst")

    return types.int64(a, i, v), codegen


@intrinsic
def atomic_load(typingctx, a, i):
    """a[i], read atomically (sequentially consistent). a: 1-D int64."""
    if not _is_int64_vector(a):
        return None

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_int64_slot(context, builder, signature, args), "seq_cst",
                                   8)

    return types.int64(a, i), codegen


@intrinsic
def compare_swap(typingctx, a, i, old, new):
    """If a[i] == old, set a[i] = new, atomically; returns whether it did. a: 1-D int64."""
    if not _is_int64_vector(a):
        return None

    def codegen(context, builder, signature, args):
        old_, new_ = (context.cast(builder, args[k], signature.args[k], types.int64)
                      for k in (2, 3))
        pair = builder.cmpxchg(_int64_slot(context, builder, signature, args), old_, new_,
                               "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return types.boolean(a, i, old, new), codegen


@intrinsic
def pause(typingctx):
    """The spin-wait hint (x86 `pause`: lets the core's sibling run, saves power); nothing
    on other CPUs."""
    import platform

    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")

    def codegen(context, builder, signature, args):
        if x86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
                ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


# -- the register-blocked GEMM microkernel ----------------------------------------------------



def _has_avx512() -> bool:
    """Whether the code Numba emits may use 512-bit registers: AVX-512F in the features it
    compiles for ($NUMBA_CPU_FEATURES when set, else the host CPU's)."""
    from numba.core import config

    features = config.CPU_FEATURES
    if features is None:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features().flatten()
    return "+avx512f" in features.split(",")


# One register of the target: 64 bytes (zmm, 32 of them) with AVX-512, else 32 bytes (ymm,
# 16 of them on AVX2; elsewhere LLVM splits the vectors into the target's registers).
VECTOR_BYTES = 64 if _has_avx512() else 32
PANEL_BYTES = 2 * VECTOR_BYTES  # a microkernel tile's width: two registers per row
# rows per tile: 2 x rows accumulators + 2 panel registers + 1 broadcast fit the registers
MAX_TILE_ROWS = 12 if VECTOR_BYTES == 64 else 6


def _no_unroll(module, branch) -> None:
    """Mark the loop whose back-edge is `branch` as not to be unrolled: unrolled, the
    microkernel needs twice the panel registers and spills accumulators to the stack inside
    its loop (LLVM's unroller does it for some targets, znver4 among them), which costs up to
    1.8x when the spilled lines straddle cache lines. A loop ID is a metadata node whose
    first operand is itself (LLVM LangRef, "llvm.loop"), one per loop."""
    disable = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    loop_id = ir.values.MDValue(module, [disable], name=str(len(module.metadata)))
    loop_id.operands = (loop_id, disable)
    branch.set_metadata("llvm.loop", loop_id)


@intrinsic
def gemm_microkernel(typingctx, M, A, a_off, a_sm, a_sr, B, b_off, b_sr, n_r, C, c_off, c_sm,
                     alpha, accumulate):
    """A register-blocked GEMM microkernel: an M x NB tile of C held in vector registers over
    the whole reduction (the BLIS/OpenBLAS kernel shape, e.g. BLIS's 32 x 12 sgemm kernel for
    Skylake-X), in explicit LLVM vectors of VECTOR_BYTES (512-bit with AVX-512, else 256).

    With NB = PANEL_BYTES / itemsize (32 float32, 16 float64) and flat (element) offsets
    into the C-contiguous arrays A, B, C (any ndim) of one float dtype:

        t[m, j] = sum over r < n_r of A.flat[a_off + m*a_sm + r*a_sr] * B.flat[b_off + r*b_sr + j]
        C.flat[c_off + m*c_sm + j] = alpha * t[m, j]            (accumulate false)
        C.flat[c_off + m*c_sm + j] += alpha * t[m, j]           (accumulate true)

    for m < M, j < NB. M is an int, 1..MAX_TILE_ROWS (a switch picks the code compiled for
    that height; any other M does nothing). For each height 2*M accumulators live in
    registers for the whole loop over r; per r, two vector loads of B's row, M broadcasts of
    A, 2*M FMAs (with M = MAX_TILE_ROWS the loads fit two load ports and the FMAs keep two
    FMA units busy). The stores happen once, after the loop.

    No bounds are checked (raw pointer arithmetic): callers keep every index in range.
    LLVM emits zmm code for these explicit vectors even where its loop vectorizer prefers
    256-bit ones (the "prefer-256-bit" tuning only steers the vectorizer).
    """
    dtype = getattr(A, "dtype", None)
    if not isinstance(M, types.Integer) or dtype not in (types.float32, types.float64) or any(
            not isinstance(t, types.Array) or t.dtype != dtype or t.layout != "C"
            for t in (A, B, C)):
        return None
    width = VECTOR_BYTES // (4 if dtype == types.float32 else 8)

    def codegen(context, builder, signature, args):
        at = signature.args
        i64 = ir.IntType(64)
        height, a_o, a_m, a_r, b_o, b_r, count, c_o, c_m = (
            context.cast(builder, args[i], at[i], types.intp)
            for i in (0, 2, 3, 4, 6, 7, 8, 10, 11))
        a_data, b_data, c_data = (context.make_array(at[i])(context, builder, args[i]).data
                                  for i in (1, 5, 9))
        vty = ir.VectorType(context.get_value_type(dtype), width)
        suffix = "f32" if dtype == types.float32 else "f64"
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty, vty, vty]), f"llvm.fma.v{width}{suffix}")
        undef = ir.Constant(vty, ir.Undefined)
        lane0 = ir.Constant(ir.IntType(32), 0)
        splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)
        scale = args[12]
        add = builder.icmp_unsigned("!=", args[13], ir.Constant(args[13].type, 0))

        def splat(x):
            return builder.shuffle_vector(builder.insert_element(undef, x, lane0), undef,
                                          splat_mask)

        def vector_at(base, idx):
            return builder.bitcast(builder.gep(base, [idx]), vty.as_pointer())

        def tile(rows):
            # allocas in the entry block: LLVM's mem2reg keeps them in registers
            accs = [cgutils.alloca_once_value(builder, ir.Constant(vty, None))
                    for _ in range(2 * rows)]
            with cgutils.for_range(builder, count) as loop:
                r = loop.index
                latch = builder.block  # the body is one block: it ends in the back-edge
                bi = builder.add(b_o, builder.mul(r, b_r))
                panel = (builder.load(vector_at(b_data, bi), align=1),
                         builder.load(vector_at(b_data, builder.add(bi, i64(width))), align=1))
                ar = builder.add(a_o, builder.mul(r, a_r))
                for m in range(rows):
                    a = splat(builder.load(builder.gep(a_data, [builder.add(ar, builder.mul(
                        i64(m), a_m))])))
                    for q in range(2):
                        acc = accs[2 * m + q]
                        builder.store(builder.call(fma, [a, panel[q], builder.load(acc)]), acc)
            _no_unroll(builder.module, latch.terminator)
            alpha = splat(scale)
            with builder.if_else(add) as (then, otherwise):
                for branch, accumulate_ in ((then, True), (otherwise, False)):
                    with branch:
                        for m in range(rows):
                            ci = builder.add(c_o, builder.mul(i64(m), c_m))
                            for q in range(2):
                                ptr = vector_at(c_data, builder.add(ci, i64(q * width)))
                                t = builder.load(accs[2 * m + q])
                                if accumulate_:
                                    val = builder.call(fma, [alpha, t,
                                                             builder.load(ptr, align=1)])
                                else:
                                    val = builder.fmul(alpha, t)
                                builder.store(val, ptr, align=1)

        done = builder.append_basic_block("tile.done")
        switch = builder.switch(height, done)
        for rows in range(1, MAX_TILE_ROWS + 1):
            block = builder.append_basic_block(f"tile.rows{rows}")
            switch.add_case(i64(rows), block)
            builder.position_at_end(block)
            tile(rows)
            builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    sig = types.void(M, A, a_off, a_sm, a_sr, B, b_off, b_sr, n_r, C, c_off, c_sm, alpha,
                     accumulate)
    return sig, codegen
