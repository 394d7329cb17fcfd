"""Features of the shared C computed from a binary's layout, which probes declare they use:
reading an incoming traceparent from a map[string][]string (bpf/traceparent.h) and walking a
context.Context chain (bpf/gocontext.h)."""

from __future__ import annotations

from collections.abc import Sequence

from gotrace.probes.base import Feature, LayoutMacros, macro_name, type_hash_macro
from gotrace.resolve.layout import Layout


def resolved_macros(flag: str, fields: Sequence[str], types: Sequence[str] = (),
                    functions: Sequence[str] = ()) -> LayoutMacros:
    """Macros for C that needs all of these: their offsets and type hashes, and flag = 1;
    else what is missing."""
    def macros(layout: Layout) -> dict[str, int] | str:
        gaps = [f for f in functions if f not in layout.functions]
        gaps += [f for f in fields if f not in layout.fields]
        gaps += [t for t in types if t not in layout.type_hashes]
        if gaps:
            return "missing " + ", ".join(gaps)
        found = {macro_name(f): layout.fields[f].offset for f in fields}
        found.update({type_hash_macro(t): layout.type_hashes[t] for t in types})
        found[flag] = 1
        return found
    return macros


GOCONTEXT_FIELDS = ("internal/abi.ITab.Hash", "internal/abi.Type.Hash",
                    "context.valueCtx.Context", "context.valueCtx.key", "context.valueCtx.val",
                    "context.cancelCtx.Context", "context.timerCtx.cancelCtx")
GOCONTEXT_TYPES = ("*context.valueCtx", "*context.cancelCtx", "*context.timerCtx")
# Macros for bpf/gocontext.h (walking a context.Context chain), or what is missing.
gocontext_macros = resolved_macros("HAS_GOCONTEXT", GOCONTEXT_FIELDS, GOCONTEXT_TYPES)


HMAP_FIELDS = ("runtime.hmap.flags", "runtime.hmap.B", "runtime.hmap.buckets",
               "runtime.hmap.oldbuckets")
SWISS_FIELDS = ("internal/runtime/maps.Map.dirPtr", "internal/runtime/maps.Map.dirLen",
                "internal/runtime/maps.table.groups", "internal/runtime/maps.groupsReference.data",
                "internal/runtime/maps.groupsReference.lengthMask")
MAP_SLOTS = 8  # entries per bucket (abi.MapBucketCount) / group (abi.MapGroupSlots), 1.19-1.26


def traceparent_macros(layout: Layout) -> dict[str, int] | str:
    """Macros for bpf/traceparent.h (reading a map[string][]string in place), or why the
    binary's incoming traceparents cannot be read."""
    if "swissmap" in layout.settings.get("GOEXPERIMENT", ""):
        # noswissmap (Go 1.24-1.25) keeps the old layout under a version the manifest says
        # is swiss: the resolved offsets would describe the wrong map.
        return "map layout changed by GOEXPERIMENT"
    fields = layout.fields
    swiss = SWISS_FIELDS[0] in fields
    needed = SWISS_FIELDS if swiss else HMAP_FIELDS
    gaps = [f for f in needed if f not in fields]
    if gaps:
        return "missing " + ", ".join(gaps)
    # The word size, from two consecutive pointer-sized fields: hmap.buckets/oldbuckets are
    # both unsafe.Pointer; groupsReference is {data unsafe.Pointer; lengthMask uint64}.
    if swiss:
        ptr = fields[SWISS_FIELDS[4]].offset - fields[SWISS_FIELDS[3]].offset
    else:
        ptr = fields[HMAP_FIELDS[3]].offset - fields[HMAP_FIELDS[2]].offset
    if ptr != 8:
        return f"unexpected map layout (pointer size {ptr})"
    string, slice_ = 2 * ptr, 3 * ptr  # key string {ptr, len}; value []string {ptr, len, cap}
    macros = {macro_name(f): fields[f].offset for f in needed}
    if swiss:
        # The compiler's group type (cmd/compile/internal/reflectdata, MapGroupType; named
        # SwissMapGroupType in 1.24-1.25): struct { ctrl uint64; slots [8]struct{key; elem} }.
        # Keys and values are stored inline (both are far below the 128-byte limit for that);
        # string and []string are word-aligned, so a slot has no padding.
        slot = string + slice_
        macros.update(GOMAP_SWISS=1, GOMAP_CHUNK_SIZE=8 + MAP_SLOTS * slot,
                      GOMAP_KEYS_OFF=8, GOMAP_KEY_STRIDE=slot,
                      GOMAP_ELEMS_OFF=8 + string, GOMAP_ELEM_STRIDE=slot)
    else:
        # The compiler's bucket type (reflectdata.MapBucketType): tophash [8]uint8, keys
        # [8]string, elems [8][]string, overflow pointer; all word-aligned, no padding.
        bucket = MAP_SLOTS + MAP_SLOTS * string + MAP_SLOTS * slice_ + ptr
        macros.update(GOMAP_SWISS=0, GOMAP_CHUNK_SIZE=bucket,
                      GOMAP_KEYS_OFF=MAP_SLOTS, GOMAP_KEY_STRIDE=string,
                      GOMAP_ELEMS_OFF=MAP_SLOTS + MAP_SLOTS * string, GOMAP_ELEM_STRIDE=slice_,
                      GOMAP_OVERFLOW_OFF=bucket - ptr)
    macros.update(GOMAP_PTR_SIZE=ptr, HAS_TRACEPARENT=1)
    return macros


def grpc_traceparent_macros(layout: Layout) -> dict[str, int] | str:
    """grpc-go keeps a stream's incoming metadata map in its context: both walks."""
    maps = traceparent_macros(layout)
    if isinstance(maps, str):
        return maps
    context = gocontext_macros(layout)
    return context if isinstance(context, str) else {**maps, **context}


# Continuing an incoming trace: net/http's header map, grpc-go's metadata through the context.
TRACEPARENT = Feature("traceparent", traceparent_macros)
# A router's per-request object recognised through the request's context too (bpf/route.h),
# when a middleware replaced the request; without it, only by the request itself.
REQUEST_CONTEXT = Feature("request_context", gocontext_macros)
GRPC_TRACEPARENT = Feature("traceparent", grpc_traceparent_macros)
