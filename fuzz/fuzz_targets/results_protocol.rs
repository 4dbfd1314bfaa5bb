//! The results protocol the host reads from a guest's serial port: bytes →
//! lines (`LineBuffer`) → messages (`protocol::decode`) → a kernel's column
//! (`Recorder`), as `kharness matrix` does with a guest's output.
#![no_main]
use kharness_matrix::protocol::{decode, LineBuffer};
use kharness_matrix::results::{KernelRun, KernelStatus, Recorder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = LineBuffer::default();
    let mut run = KernelRun::new("fuzz", 0, "fuzzed guest");
    let mut rec = Recorder::default();
    // Two pushes, split mid-stream, as serial reads arrive.
    let (a, b) = data.split_at(data.len() / 2);
    let mut lines = buf.push(a);
    lines.extend(buf.push(b));
    lines.extend(buf.rest());
    for l in lines {
        if let Ok(Some(msg)) = decode(&l) {
            rec.apply(&mut run, msg);
        }
    }
    rec.finish(&mut run, KernelStatus::Crashed, "fuzz");
    let _ = run.counts();
    let _ = run.missing_modules();
    for r in &run.results {
        let _ = run.reason_of(&r.report);
    }
});
