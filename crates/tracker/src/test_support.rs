//! Helpers shared by the unit tests of several modules.

use cid::multihash::Multihash;
use cluster_types::Cid;

/// Multicodec of raw blocks.
const RAW: u64 = 0x55;
/// Multihash code of the identity "hash".
const IDENTITY: u64 = 0x00;

/// A distinct, valid CID for every `n`, without hashing anything.
pub(crate) fn cid(n: u32) -> Cid {
    let digest = Multihash::<64>::wrap(IDENTITY, &n.to_be_bytes()).expect("four bytes fit an identity digest");
    Cid::new_v1(RAW, digest)
}

/// Bytes allocated minus bytes freed by the current thread, for memory assertions. Counting
/// per thread keeps tests running in parallel from disturbing each other's numbers.
pub(crate) fn thread_net_allocated() -> isize {
    counting::NET.with(std::cell::Cell::get)
}

mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        pub(super) static NET: Cell<isize> = const { Cell::new(0) };
    }

    fn add(delta: isize) {
        // `try_with`: allocations during thread teardown, after the slot is gone, are not counted.
        let _ = NET.try_with(|net| net.set(net.get() + delta));
    }

    /// The system allocator, counting per thread.
    struct Counting;

    // SAFETY: every call is forwarded unchanged to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            add(-(layout.size() as isize));
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            // SAFETY: same contract as ours.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            add(new_size as isize - layout.size() as isize);
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;
}
