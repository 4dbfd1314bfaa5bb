//! The system's apt sources (one-line `sources.list` and deb822
//! `.sources`), and `apt-cache madison` output, as `kharness matrix` reads
//! them to find kernel packages: the rows become candidates ordered by
//! Debian version, so the version comparison must be a total order.
#![no_main]
use std::cmp::Ordering;

use kharness_matrix::apt::{
    archive_for_suite, candidates, compare_versions, parse_deb822, parse_madison, parse_one_line, split_stanzas,
};
use kharness_matrix::config::DebianSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut entries = parse_one_line(text);
    entries.extend(parse_deb822(text));
    let _ = split_stanzas(text);
    for suite in ["bookworm", "bookworm-security", "sid"] {
        let _ = archive_for_suite(&entries, suite);
    }
    let rows = parse_madison(text);
    let versions: Vec<&str> = rows.iter().map(|r| r.1.as_str()).take(8).collect();
    for a in &versions {
        assert_eq!(compare_versions(a, a), Ordering::Equal, "{a:?}");
        for b in &versions {
            let ab = compare_versions(a, b);
            assert_eq!(ab, compare_versions(b, a).reverse(), "{a:?} vs {b:?}");
            for c in &versions {
                if ab != Ordering::Greater && compare_versions(b, c) != Ordering::Greater {
                    assert_ne!(compare_versions(a, c), Ordering::Greater, "{a:?} <= {b:?} <= {c:?}");
                }
            }
        }
    }
    let suites: Vec<String> = rows.iter().map(|r| r.2.clone()).take(2).collect();
    let spec = DebianSpec {
        suites,
        image: vec![
            "linux-image-6.1.0-*-cloud-amd64-unsigned".into(),
            "linux-image-*".into(),
        ],
        modules_package: Some("linux-modules-*".into()),
        release: "6.1.0-*-cloud-amd64".into(),
    };
    let _ = candidates(&spec, &rows);
});
