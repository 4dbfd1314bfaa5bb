//! unix.fd_property: random sends with descriptors, random control
//! buffers, and a model that predicts every received descriptor and flag.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use kharness::sys::{kcmp_file, recvmsg_scm};
use kharness::{CaseDef, CaseError, Ctx, Expect};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::socket::MsgFlags;
use nix::unistd::{lseek, Whence};
use proptest::prelude::*;

use crate::prop::Property;

use super::{cmsg_space, guarded, pair, scm_max_fds, send_fds, FdTable};

/// Open file descriptions a sequence can send (indices 0..POOL).
const POOL: usize = 5;
/// Most descriptors one generated send carries.
const MAX_PER_SEND: usize = 7;
/// Largest control buffer a generated receive offers (room for 10 fds).
const MAX_CAP: usize = 56;

/// unix.fd_property
pub static FD_PROPERTY: CaseDef = CaseDef {
    id: "unix.fd_property",
    variants: &[],
    summary:
        "proptest: random SCM_RIGHTS sends and random control buffers; a model predicts every descriptor and MSG_CTRUNC",
    drives: "proptest generates a socket type (stream, dgram, seqpacket) and 1–24 operations on one \
        socketpair: send one byte with 0–7 descriptors drawn (with repeats) from 5 distinct open file \
        descriptions, or receive one byte with a control buffer of 0–56 bytes (`explore`: up to 96 \
        operations, 28 descriptors per send, 224-byte buffers, fresh seeds). Failures shrink and are kept \
        in fixtures/proptest-regressions/unix_fd_property.txt, which is replayed first on every run.",
    observes: "For each receive: the byte (which message), the descriptors installed, kcmp(KCMP_FILE) of each \
        against the pool, msg_flags; EAGAIN on an empty queue; /proc/self/fd at the start and end of every \
        sequence and of the whole case.",
    predicts: "Messages come back in send order, one per receive; a message of n descriptors received with a \
        buffer of cap bytes installs its first min(n, (cap − 16) / 4) descriptors (none for cap ≤ 16), each \
        the open file description sent in that position, and sets MSG_CTRUNC exactly when that is fewer than \
        n; a receive on an empty queue is EAGAIN; after each sequence (socketpair closed with messages \
        still queued) the fd table is exactly what it was.",
    why: "scm_detach_fds() / scm_max_fds() (net/core/scm.c) and scm_recv() with no control buffer; one skb \
        per sendmsg() in unix_stream_sendmsg() and unix_dgram_sendmsg(), and unix_stream_read_generic() stops \
        after an skb that carried descriptors; unix_release_sock() purges the receive queue, dropping the \
        in-flight references without touching our table.",
    kernels: "Unchanged in the matrix (5.10+); see unix.ctrunc and unix.scm_rights.",
    shell: "ls -l /proc/PID/fd",
    source: "seed 004",
    timeout: Duration::from_secs(30),
    run,
};

/// The socket type of one generated sequence (unix.gc_property's).
use super::gc_property::Kind;

/// One generated operation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Send one byte with these pool entries as SCM_RIGHTS (none: no cmsg).
    Send(Vec<u8>),
    /// Receive one byte with a control buffer of this many bytes.
    Recv(usize),
}

/// The generator; `explore` sends up to 4x as many descriptors at once and
/// offers control buffers up to 4x as large.
fn op(explore: bool) -> impl Strategy<Value = Op> {
    let k = if explore { 4 } else { 1 };
    prop_oneof![
        proptest::collection::vec(0..POOL as u8, 0..=k * MAX_PER_SEND).prop_map(Op::Send),
        prop_oneof![
            Just(0usize),
            Just(16),
            Just(cmsg_space(4 * MAX_PER_SEND)),
            0usize..=k * MAX_CAP
        ]
        .prop_map(Op::Recv),
    ]
}

impl Op {
    /// The step in words.
    fn describe(&self) -> String {
        match self {
            Op::Send(fds) if fds.is_empty() => "send one byte with no descriptor".to_string(),
            Op::Send(fds) => format!(
                "send one byte with descriptors of files {}",
                fds.iter().map(|f| format!("#{f}")).collect::<Vec<_>>().join(", ")
            ),
            Op::Recv(cap) => format!("receive one byte with a {cap}-byte control buffer"),
        }
    }
}

/// The property: quick and explore counts, regression file.
const PROPERTY: Property = Property {
    id: "unix.fd_property",
    quick_cases: 96,
    explore_cases: 512,
    regressions: "unix_fd_property.txt",
    max_shrink_iters: 512,
};

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Stream), Just(Kind::Dgram), Just(Kind::SeqPacket)]
}

/// What the model says one receive returns.
#[derive(Debug, PartialEq, Eq)]
enum Predicted {
    /// Nothing queued.
    Eagain,
    /// Message `seq` (its byte), these pool entries installed, MSG_CTRUNC.
    Message { byte: u8, fds: Vec<u8>, ctrunc: bool },
}

/// The model: a FIFO of messages and the control-buffer arithmetic.
#[derive(Debug, Default)]
struct Model {
    queue: VecDeque<(u8, Vec<u8>)>,
    sent: u32,
}

impl Model {
    fn send(&mut self, fds: &[u8]) -> u8 {
        let byte = (self.sent % 251) as u8;
        self.sent += 1;
        self.queue.push_back((byte, fds.to_vec()));
        byte
    }

    fn recv(&mut self, cap: usize) -> Predicted {
        match self.queue.pop_front() {
            None => Predicted::Eagain,
            Some((byte, fds)) => {
                let fit = scm_max_fds(cap).min(fds.len());
                Predicted::Message {
                    byte,
                    ctrunc: fit < fds.len(),
                    fds: fds[..fit].to_vec(),
                }
            }
        }
    }
}

/// Totals across every sequence the runner tried (shrinking included).
#[derive(Default)]
struct Totals {
    sequences: Cell<u64>,
    operations: Cell<u64>,
    fds_predicted: Cell<u64>,
    fds_received: Cell<u64>,
    ctrunc_predicted: Cell<u64>,
    ctrunc_seen: Cell<u64>,
}

/// `POOL` distinct open file descriptions of one memfd, told apart by
/// offset (and by kcmp when the kernel has it).
fn pool() -> std::io::Result<(OwnedFd, Vec<File>)> {
    let memfd = memfd_create("kharness-fd-property", MFdFlags::MFD_CLOEXEC)?;
    let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
    let mut v = Vec::with_capacity(POOL);
    for k in 0..POOL {
        let f = OpenOptions::new().read(true).write(true).open(&path)?;
        lseek(&f, 100 + k as i64, Whence::SeekSet)?;
        v.push(f);
    }
    Ok((memfd, v))
}

/// Which pool entry `fd` is, by kcmp (or by offset without kcmp).
fn which(fd: &OwnedFd, pool: &[File], kcmp: bool) -> std::io::Result<Option<u8>> {
    for (k, f) in pool.iter().enumerate() {
        let same = if kcmp {
            kcmp_file(fd.as_fd(), f.as_fd())? == 0
        } else {
            lseek(fd, 0, Whence::SeekCur)? == 100 + k as i64
        };
        if same {
            return Ok(Some(k as u8));
        }
    }
    Ok(None)
}

fn run_sequence(kind: Kind, ops: &[Op], kcmp: bool, t: &Totals) -> Result<(), String> {
    let e = |what: &str, err: std::io::Error| format!("{what}: {err}");
    let table0 = FdTable::snapshot().map_err(|x| e("list /proc/self/fd", x))?;
    {
        let (_memfd, pool) = pool().map_err(|x| e("pool", x))?;
        let (a, b) = pair(kind.sock_type()).map_err(|x| e("socketpair", x))?;
        let mut model = Model::default();
        for (i, op) in ops.iter().enumerate() {
            t.operations.set(t.operations.get() + 1);
            match op {
                Op::Send(fds) => {
                    let byte = model.send(fds);
                    let raw: Vec<RawFd> = fds.iter().map(|&k| pool[k as usize].as_raw_fd()).collect();
                    let n = send_fds(&a, &[byte], &raw, MsgFlags::MSG_DONTWAIT)
                        .map_err(|x| e(&format!("op {i} sendmsg"), x))?;
                    if n != 1 {
                        return Err(format!("op {i}: sendmsg sent {n} bytes"));
                    }
                }
                Op::Recv(cap) => {
                    let want = model.recv(*cap);
                    let mut buf = [0u8; 1];
                    let got = match recvmsg_scm(b.as_fd(), &mut buf, *cap, libc::MSG_DONTWAIT) {
                        Err(x) if x.raw_os_error() == Some(libc::EAGAIN) => Predicted::Eagain,
                        Err(x) => return Err(e(&format!("op {i} recvmsg"), x)),
                        Ok(r) => {
                            let mut fds = Vec::new();
                            for fd in &r.fds {
                                match which(fd, &pool, kcmp).map_err(|x| e("kcmp", x))? {
                                    Some(k) => fds.push(k),
                                    None => return Err(format!("op {i}: a received descriptor is not in the pool")),
                                }
                            }
                            if r.bytes != 1 {
                                return Err(format!("op {i}: recvmsg returned {} bytes", r.bytes));
                            }
                            Predicted::Message {
                                byte: buf[0],
                                fds,
                                ctrunc: r.flags & libc::MSG_CTRUNC != 0,
                            }
                        }
                    };
                    if let Predicted::Message { fds, ctrunc, .. } = &want {
                        t.fds_predicted.set(t.fds_predicted.get() + fds.len() as u64);
                        t.ctrunc_predicted.set(t.ctrunc_predicted.get() + u64::from(*ctrunc));
                    }
                    if let Predicted::Message { fds, ctrunc, .. } = &got {
                        t.fds_received.set(t.fds_received.get() + fds.len() as u64);
                        t.ctrunc_seen.set(t.ctrunc_seen.get() + u64::from(*ctrunc));
                    }
                    if got != want {
                        return Err(format!(
                            "op {i} ({op:?}): model predicted {want:?}, kernel gave {got:?}"
                        ));
                    }
                }
            }
        }
        // Dropping the pair with messages still queued releases their
        // descriptors in the kernel; none were ever in our table.
    }
    let table1 = FdTable::snapshot().map_err(|x| e("list /proc/self/fd", x))?;
    let leaked = table0.added_in(&table1);
    if !leaked.is_empty() || table0.len() != table1.len() {
        return Err(format!("fd table changed over the sequence: {leaked:?}"));
    }
    t.sequences.set(t.sequences.get() + 1);
    Ok(())
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: how many operations fit in the time budget varies.
    ctx.mark_volatile("operations_run");
    ctx.mark_volatile("ctrunc.seen");
    ctx.mark_volatile("descriptors.received");
    guarded(ctx, |ctx| {
        let kcmp = {
            let f = File::open("/dev/null")?;
            kcmp_file(f.as_fd(), f.as_fd()).is_ok()
        };
        ctx.observe("kcmp.available", kcmp);
        let totals = Totals::default();
        let strategy = |deep: bool| {
            (
                kind(),
                proptest::collection::vec(op(deep), 1..=if deep { 96 } else { 24 }),
            )
        };
        let found = PROPERTY.run(ctx, strategy, |(k, ops)| run_sequence(k, &ops, kcmp, &totals));
        ctx.observe("sequences_passed", totals.sequences.get());
        ctx.observe("operations_run", totals.operations.get());
        ctx.check_eq(
            "descriptors.received",
            totals.fds_predicted.get(),
            totals.fds_received.get(),
            "the model's min(n, scm_max_fds(cap)) summed over every receive",
        );
        ctx.check_eq(
            "ctrunc.seen",
            totals.ctrunc_predicted.get(),
            totals.ctrunc_seen.get(),
            "the model's MSG_CTRUNC count over every receive",
        );
        PROPERTY.report(
            ctx,
            found,
            |(k, ops)| {
                std::iter::once(format!("a {k:?} socketpair"))
                    .chain(ops.iter().map(Op::describe))
                    .collect()
            },
            |ctx, (k, ops)| {
                let replay = run_sequence(*k, ops, kcmp, &Totals::default()).err();
                ctx.check(
                    "minimal.replay",
                    Expect::Absent,
                    serde_json::json!(replay),
                    "the minimal sequence, run once more: no disagreement",
                );
                Ok(())
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_truncates_like_scm_detach_fds() {
        let mut m = Model::default();
        assert_eq!(m.recv(64), Predicted::Eagain);
        m.send(&[1, 2, 3]);
        m.send(&[]);
        m.send(&[4]);
        assert_eq!(
            m.recv(cmsg_space(4)),
            Predicted::Message {
                byte: 0,
                fds: vec![1, 2],
                ctrunc: true
            }
        );
        assert_eq!(
            m.recv(0),
            Predicted::Message {
                byte: 1,
                fds: vec![],
                ctrunc: false
            }
        );
        assert_eq!(
            m.recv(16),
            Predicted::Message {
                byte: 2,
                fds: vec![],
                ctrunc: true
            }
        );
        assert_eq!(m.recv(16), Predicted::Eagain);
    }
}
