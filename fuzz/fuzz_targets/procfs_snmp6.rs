//! `/proc/net/snmp6` parser (`Name value` per line), then the snapshot
//! operations the cases apply to two reads: an input with a NUL byte is two
//! files, before and after.
#![no_main]
#[path = "mib_pair.rs"]
mod mib_pair;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mib_pair::check(data, kharness::procfs::parse_snmp6));
