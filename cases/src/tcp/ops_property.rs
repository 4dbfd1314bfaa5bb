//! tcp.ops_property

use std::time::Duration;

use kharness::{CaseDef, CaseError, Ctx};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};

use super::{check_queue_model, connect, read_some, settle, write_some, ConnOpts, Path, SETTLE};

/// Where shrunk counterexamples are kept (and replayed first on every run).
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/proptest-regressions/tcp_ops_property.txt"
);

/// One step of a generated sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Client writes up to n bytes (non-blocking).
    Write(u64),
    /// Server reads up to n bytes (non-blocking).
    Read(u64),
    /// Wait until settled and check every equality.
    Settle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u64..200_000).prop_map(Op::Write),
        3 => (1u64..100_000).prop_map(Op::Read),
        2 => Just(Op::Settle),
    ]
}

/// tcp.ops_property
pub static OPS_PROPERTY: CaseDef = CaseDef {
    id: "tcp.ops_property",
    variants: &[],
    summary: "random write/read/settle sequences keep every send-buffer equality (proptest, shrinking)",
    drives: "Property test: 24 random sequences of 1-12 operations (client write(n) \
        non-blocking, server read(m) non-blocking, settle) on a fresh connected pair across \
        the veth pair, receiver SO_RCVBUF 4096; a final settle ends every sequence. \
        Counterexamples shrink to a minimal sequence and are stored in \
        fixtures/proptest-regressions/tcp_ops_property.txt, which is replayed first on every run.",
    observes: "After every settle, the tcp.fill figures of both ends.",
    predicts: "After every settle, every tcp.fill equality holds with the bytes written and \
        read so far: written + 1 == bytes_acked + SIOCOUTQ; SIOCOUTQNSD == notsent_bytes; \
        receiver SIOCINQ + read == bytes sent == tcpi_bytes_received; bytes_sent - \
        bytes_retrans == bytes sent; queue bounds; buffers agree with SO_MEMINFO; the bytes read \
        carry the written pattern in order.",
    why: "As tcp.fill: the counters are differences of snd_una, snd_nxt, write_seq, rcv_nxt \
        and copied_seq, so they must agree in every quiescent state whatever the history.",
    kernels: "As tcp.fill.",
    shell: "ip netns exec khpair-client ss -tmi, between random reads and writes",
    source: "seed 000/001, seed 002",
    timeout: Duration::from_secs(60),
    run,
};

fn run_sequence(kernel: &kharness::KernelInfo, ops: &[Op], record: Option<&mut Ctx>) -> Result<(), String> {
    let mut conn = connect(
        Path::Veth,
        &ConnOpts {
            server_rcvbuf: Some(4096),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let (mut written, mut read) = (0u64, 0u64);
    let mut scratch = Ctx::new(kernel.clone(), None);
    let ctx = match record {
        Some(c) => c,
        None => &mut scratch,
    };
    let mut settles = 0;
    let all: Vec<Op> = ops.iter().cloned().chain(std::iter::once(Op::Settle)).collect();
    for (i, op) in all.iter().enumerate() {
        match op {
            Op::Write(n) => {
                write_some(&mut conn.client, &mut written, *n).map_err(|e| e.to_string())?;
            }
            Op::Read(n) => {
                let (_, bad) = read_some(&mut conn.server, &mut read, *n).map_err(|e| e.to_string())?;
                if let Some(off) = bad {
                    ctx.check_eq(
                        format!("op{i}.pattern_at_{off}"),
                        true,
                        false,
                        "TCP delivers the byte stream in order",
                    );
                }
            }
            Op::Settle => {
                settles += 1;
                let p = settle(&conn, SETTLE).map_err(|e| e.to_string())?;
                check_queue_model(ctx, &format!("op{i}"), &p, written, read);
            }
        }
        let m = ctx.mismatches_so_far();
        if let Some(first) = m.first() {
            return Err(format!("after {:?}: {first}", &all[..=i]));
        }
    }
    ctx.observe("settles", settles);
    Ok(())
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let persistence = std::path::Path::new(REGRESSIONS)
        .parent()
        .is_some_and(|d| d.is_dir())
        .then(|| {
            Box::new(FileFailurePersistence::Direct(REGRESSIONS)) as Box<dyn proptest::test_runner::FailurePersistence>
        });
    let config = Config {
        cases: 24,
        max_shrink_iters: 200,
        failure_persistence: persistence,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let kernel = ctx.kernel.clone();
    let sequences = std::cell::Cell::new(0u32);
    let ops_run = std::cell::Cell::new(0usize);
    let result = runner.run(&proptest::collection::vec(op(), 1..12), |ops| {
        sequences.set(sequences.get() + 1);
        ops_run.set(ops_run.get() + ops.len());
        run_sequence(&kernel, &ops, None).map_err(TestCaseError::fail)
    });
    ctx.observe("sequences_run", sequences.get());
    ctx.observe("operations_run", ops_run.get() as u64);
    match result {
        Ok(()) => {
            ctx.check_eq(
                "property",
                "held",
                "held",
                "every settle of every sequence met the model (a failure would replay the shrunk sequence here)",
            );
            // Replay one fixed sequence into the report so its figures are visible.
            let sample = [
                Op::Write(150_000),
                Op::Settle,
                Op::Read(5_000),
                Op::Settle,
                Op::Read(100_000),
                Op::Write(20_000),
            ];
            run_sequence(&ctx.kernel.clone(), &sample, Some(ctx))
                .map_err(CaseError::Harness)
                .or_else(|e| {
                    // A mismatch in the replay is recorded in ctx already.
                    if ctx.mismatches_so_far().is_empty() {
                        Err(e)
                    } else {
                        Ok(())
                    }
                })
        }
        Err(TestError::Fail(reason, minimal)) => {
            ctx.observe("minimal_sequence", format!("{minimal:?}"));
            ctx.note(format!("shrunk counterexample: {reason}"));
            // Replay the minimal sequence into the report: its mismatches
            // become this case's.
            let r = run_sequence(&ctx.kernel.clone(), &minimal, Some(ctx));
            if ctx.mismatches_so_far().is_empty() {
                ctx.check_eq(
                    "property",
                    "held",
                    format!("failed: {reason}"),
                    "the shrunk sequence failed during the property run",
                );
            }
            r.map_err(CaseError::Harness).or(Ok(()))
        }
        Err(TestError::Abort(why)) => Err(CaseError::Harness(format!("property test aborted: {why}"))),
    }
}
