//! The matrix's kernel list (`fixtures/kernels.toml`) and the pieces of it
//! the matrix uses afterwards: suites, package patterns, shards.
#![no_main]
use std::path::Path;

use kharness_matrix::config::{capture, fill, parse_shard, shard, KernelSource, MatrixConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_shard(text);
    let Ok(c) = MatrixConfig::parse(text, Path::new("kernels.toml")) else {
        return;
    };
    let _ = c.suites();
    for (i, k) in c.kernels.iter().enumerate() {
        let _ = shard(&c.kernels, i + 1, c.kernels.len());
        if let KernelSource::Debian(d) = &k.source {
            for p in &d.image {
                let name = fill(p, "6.1.0-99");
                let _ = capture(p, &name);
                let _ = capture(&d.release, &name);
            }
        }
    }
});
