"""Two LLVM intrinsics the fused kernels call from compiled code (numba.extending.intrinsic).

- `cycles()`: the CPU's cycle counter (llvm.readcyclecounter: the TSC on x86, a few ns).
- `prefetch(X, r, c)`: a read prefetch of the cache line holding X[r, c] into every cache
  level (llvm.prefetch, read, locality 3, data); a hint, never a fault, whatever the index
  (the address is only computed, not checked). X is a 2-D C-contiguous array.
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
