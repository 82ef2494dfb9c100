//! Link-time choices that cut the broker's start-up time and idle memory (see BENCHMARKS.md):
//!
//! - Relative relocations packed (DT_RELR): the position-independent binary carries ~34,000
//!   of them (vtables, static string tables) in 800 KB of `.rela.dyn`, which the loader read
//!   on every start and which then stayed resident; packed they take 8 KB. Running the binary
//!   needs glibc 2.36 (Debian 12); rust-lld, Rust's default linker on x86-64 Linux, and GNU ld
//!   2.38+ write them (older GNU ld ignores the flag with a warning).
//! - `.text.startup`/`.text.unlikely`/`.text.hot` kept together (`-z keep-text-section-prefix`),
//!   as GNU ld does by default and rust-lld does not: RocksDB's ~290 static initialisers,
//!   which all run before `main`, otherwise lie scattered over 86 of the binary's 64 KB blocks,
//!   and the kernel maps whole blocks around each page touched (fault-around).
//! - libstdc++ (RocksDB's C++ runtime) linked statically: the dynamic loader spent about a
//!   millisecond of every start resolving RocksDB's libstdc++ symbols and relocating the
//!   library, a tenth of the exec-to-ready budget. librocksdb-sys asks for `-lstdc++`; a
//!   search directory holding only `libstdc++.a`, put ahead of the compiler's own, makes the
//!   linker take the archive. Set `KLAMM_DYNAMIC_LIBSTDCXX=1` to keep the shared library.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KLAMM_DYNAMIC_LIBSTDCXX");
    println!("cargo:rerun-if-env-changed=CXX");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu")
    {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!("cargo:rustc-link-arg-bins=-Wl,-z,keep-text-section-prefix");
    if std::env::var_os("KLAMM_DYNAMIC_LIBSTDCXX").is_some() {
        return;
    }
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".to_string());
    let Ok(out) = Command::new(&cxx)
        .arg("-print-file-name=libstdc++.a")
        .output()
    else {
        return;
    };
    let archive = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // g++ echoes the bare name back when it has no such file.
    if !out.status.success() || !archive.is_absolute() || !archive.exists() {
        println!("cargo:warning=no static libstdc++ found; linking it dynamically");
        return;
    }
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("cxx");
    let link = dir.join("libstdc++.a");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::remove_file(&link);
    if std::os::unix::fs::symlink(&archive, &link).is_err() {
        return;
    }
    println!("cargo:rustc-link-search=native={}", dir.display());
}
