//! Generates and compiles the C++ half of the cxx bridge.
//!
//! The generated header lands in `$OUT_DIR/cxxbridge/include/ringfeed-cpp/src/lib.rs.h`
//! and, through cxx-build's links, in `<target>/cxxbridge/`; CMake copies it from there.

fn main() {
    cxx_build::bridge("src/lib.rs")
        .include("include")
        .std("c++17")
        .flag_if_supported("-Wno-unused-parameter")
        .compile("ringfeed-cpp-bridge");
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=include/ringfeed/arrow_c.h");
}
