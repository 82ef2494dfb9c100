//! The broker's parsers of untrusted bytes, compiled from its own source files so the fuzz
//! targets exercise exactly the code the broker runs: the request framing and header
//! (`src/server/wire.rs`, with the table in `src/apis.rs`), the record batch framing (`src/log/batch.rs`) and the streaming
//! record walk with its decompression caps (`src/log/records.rs`), and the SASL messages a
//! client sends before it has authenticated (`src/security/`).

#[path = "../../src/apis.rs"]
pub mod apis;
#[path = "../../src/log/batch.rs"]
pub mod batch;
#[path = "../../src/log/records.rs"]
pub mod records;
#[path = "../../src/server/wire.rs"]
pub mod wire;
// The SASL mechanisms' parsers of what a client sends before it has authenticated.
#[path = "../../src/security/oauthbearer.rs"]
pub mod oauthbearer;
#[path = "../../src/security/plain.rs"]
pub mod plain;
#[path = "../../src/security/scram.rs"]
pub mod scram;

/// Any single allocation above this is a finding: no input may make the parsers reserve
/// what a length field claims. (libFuzzer's own -malloc_limit_mb needs a sanitizer's malloc
/// hooks, and the targets run without one.)
pub const ALLOCATION_LIMIT: usize = 64 << 20;

/// The system allocator, aborting on an allocation past [`ALLOCATION_LIMIT`] so libFuzzer
/// records the input as a crash.
pub struct CappedAllocator;

fn too_large(size: usize) -> ! {
    // Plain write(2): formatting here must not allocate.
    let msg = b"klamm-fuzz: allocation past ALLOCATION_LIMIT (a length the input dictates)\n";
    unsafe { libc_write(2, msg.as_ptr(), msg.len()) };
    let _ = size;
    std::process::abort()
}

extern "C" {
    #[link_name = "write"]
    fn libc_write(fd: i32, buf: *const u8, count: usize) -> isize;
}

unsafe impl std::alloc::GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            too_large(layout.size());
        }
        std::alloc::System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            too_large(layout.size());
        }
        std::alloc::System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_LIMIT {
            too_large(new_size);
        }
        std::alloc::System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;
