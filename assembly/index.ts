// The netpd core's exports: raw-memory functions over one shared linear memory.
// Every function takes the addresses it works on; the module keeps no state of its own.
export { heap_base, arena_bytes, arena_init, arena_reserve, arena_alloc_burst, arena_retain_burst, arena_free_burst, arena_reclaim_burst, arena_free_count } from './arena';
export { ring_bytes, ring_init, ring_count, ring_free_count, ring_enqueue_burst, ring_enqueue_bulk, ring_dequeue_burst, ring_dequeue_bulk } from './ring';
export { bpf_validate, bpf_decode, bpf_run, bpf_run_burst } from './bpf';
export { pid_bytes, pid_init, pid_alloc, pid_free, pid_index, pid_fid } from './pidtable';
export { dispatch_bytes, dispatch_init, dispatch_add, dispatch_remove, dispatch_classify, dispatch_group } from './dispatch';
export { layout_table } from './layout';
export { dpf_bytes, dpf_init, dpf_insert, dpf_remove, dpf_field_find, dpf_match, dpf_classify_burst, dpf_hash, dpf_layout_table } from './dpf';
