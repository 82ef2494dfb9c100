//! Links libstdc++ (RocksDB's C++ runtime) statically, and packs the binary's relative
//! relocations (DT_RELR).
//!
//! Why the packing: the position-independent binary carries ~34,000 relative relocations
//! (vtables, static string tables) in 800 KB of `.rela.dyn`, which the loader reads on
//! every start and which then stay resident; packed they take a few KB. It needs glibc 2.36
//! and binutils 2.38 (Debian 12); older linkers ignore the flag with a warning.
//!
//! Why static libstdc++: the dynamic loader spent about a millisecond of every start
//! resolving RocksDB's libstdc++ symbols and relocating the library, a tenth of the broker's exec-to-ready budget
//! (see BENCHMARKS.md). librocksdb-sys asks for `-lstdc++`; a search directory holding only
//! `libstdc++.a`, put ahead of the compiler's own, makes the linker take the archive.
//! Set `KLAMM_DYNAMIC_LIBSTDCXX=1` to keep the shared library.

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
