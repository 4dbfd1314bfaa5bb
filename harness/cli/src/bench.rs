//! `kharness bench`: the harness's own speed, measured against the
//! `netns-scripts/` baseline in the same run.
//!
//! Figures (each `name value unit`, or one JSON object per line with
//! `--format json`):
//! - `topology.harness`: build + tear down the two-namespace veth topology
//!   with addresses ([`Topology::pair`]), median per iteration (all
//!   topology figures are medians).
//! - `topology.script`: the same through `netns-scripts/pair.sh up` + `down`.
//! - `topology.bare_unshare`: just the two `unshare(CLONE_NEWNET)` calls the
//!   topology needs (thread + unshare + close, both at once as the harness
//!   does them), the floor.
//! - `topology.speedup_vs_script` and `topology.cost_vs_bare_unshare`: ratios.
//! - `neigh.*`: N neighbour adds + one dump through the harness (rtnetlink's
//!   neighbour builder, pipelined) against the same through the raw netlink
//!   socket (one request at a time, the harness's way before rtnetlink) and
//!   through `ip -batch` (including starting `ip`), and their ratios; each
//!   the median of five rounds.
//! - `observe.snapshot`: one full observation of a connected TCP socket
//!   (TCP_INFO + SIOCINQ + SIOCOUTQ + SIOCOUTQNSD + SO_MEMINFO + 2 getsockopt).
//!
//! Iterations alternate harness and script so that background namespace
//! cleanup in the kernel (which is asynchronous) weighs on both alike.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;
use kharness::netns::NetNs;
use kharness::observe::SockSnapshot;
use kharness::topology::Topology;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Iterations of each topology measurement.
    #[arg(long, default_value_t = 20)]
    iterations: u32,
    /// `human` or `json` (one object per figure: name, value, unit).
    #[arg(long, default_value = "human", value_parser = ["human", "json"])]
    format: String,
    /// Neighbours added in the neighbour-throughput figure.
    #[arg(long, default_value_t = 1000)]
    neighbours: usize,
    /// The netns-scripts directory (default: found next to the binary's
    /// source tree, or ./netns-scripts).
    #[arg(long)]
    scripts: Option<PathBuf>,
}

struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
}

fn scripts_dir(arg: Option<PathBuf>) -> Result<PathBuf, String> {
    let candidates = match arg {
        Some(p) => vec![p],
        None => vec![
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../netns-scripts"),
            PathBuf::from("netns-scripts"),
        ],
    };
    candidates
        .into_iter()
        .find(|p| p.join("pair.sh").is_file())
        .ok_or_else(|| "cannot find netns-scripts/pair.sh; pass --scripts DIR".to_string())
}

/// Median: robust against the odd iteration that a background kernel
/// worker (namespace cleanup runs asynchronously) or another process delays.
fn median(d: &[Duration]) -> f64 {
    median_f(d.iter().map(|x| x.as_secs_f64()))
}

/// Rounds of the neighbour-add measurement; the figures are their medians.
const NEIGH_ROUNDS: usize = 5;

fn median_f(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn run(args: BenchArgs) -> Result<(), String> {
    if args.iterations == 0 || args.iterations > 10_000 {
        return Err(format!("--iterations {} must be from 1 to 10000", args.iterations));
    }
    let dir = scripts_dir(args.scripts)?;
    let script = dir.join("pair.sh");
    let have_ip = Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
    let mut harness = Vec::new();
    let mut bare = Vec::new();
    let mut scripted = Vec::new();
    let name = format!("khbench{}", std::process::id());
    for _ in 0..args.iterations {
        let t = Instant::now();
        let topo = Topology::pair().map_err(|e| e.to_string())?;
        drop(topo);
        harness.push(t.elapsed());

        // The floor, made the way the harness makes them: both namespaces
        // at once.
        let t = Instant::now();
        std::thread::scope(|s| {
            let a = s.spawn(bare_unshare);
            let b = s.spawn(bare_unshare);
            a.join().map_err(|_| "unshare thread panicked".to_string())??;
            b.join().map_err(|_| "unshare thread panicked".to_string())?
        })?;
        bare.push(t.elapsed());

        if have_ip {
            let t = Instant::now();
            let up = Command::new("sh").arg(&script).args(["up", &name]).status();
            let down = Command::new("sh").arg(&script).args(["down", &name]).status();
            scripted.push(t.elapsed());
            if !up.is_ok_and(|s| s.success()) || !down.is_ok_and(|s| s.success()) {
                // Make sure nothing of ours stays mounted, then report.
                let _ = Command::new("sh").arg(&script).args(["down", &name]).status();
                return Err(format!("{} failed; run it by hand to see why", script.display()));
            }
        }
    }
    let snapshot = snapshot_cost()?;
    // Neighbour adds take milliseconds: one round is at the mercy of a
    // scheduler hiccup, so the figures are medians of NEIGH_ROUNDS rounds,
    // each of which measures the three ways one after the other.
    let mut rounds = Vec::new();
    for _ in 0..NEIGH_ROUNDS {
        rounds.push(kharness_cases::netlink::bench::bench_neigh(args.neighbours)?);
    }
    let neigh_h = median_f(rounds.iter().map(|r| r.harness));
    let neigh_raw = median_f(rounds.iter().map(|r| r.raw_socket));
    let neigh_ip = rounds
        .iter()
        .map(|r| r.ip_batch)
        .collect::<Option<Vec<f64>>>()
        .map(|v| median_f(v.into_iter()));
    let h = median(&harness);
    let b = median(&bare);
    let mut figures = vec![
        Figure {
            name: "topology.harness",
            value: h * 1e3,
            unit: "ms",
        },
        Figure {
            name: "topology.bare_unshare",
            value: b * 1e3,
            unit: "ms",
        },
        Figure {
            name: "topology.cost_vs_bare_unshare",
            value: h / b,
            unit: "ratio",
        },
        Figure {
            name: "observe.snapshot",
            value: snapshot * 1e6,
            unit: "us",
        },
    ];
    figures.push(Figure {
        name: "neigh.harness_adds_per_s",
        value: args.neighbours as f64 / neigh_h,
        unit: "1/s",
    });
    figures.push(Figure {
        name: "neigh.raw_socket_adds_per_s",
        value: args.neighbours as f64 / neigh_raw,
        unit: "1/s",
    });
    figures.push(Figure {
        name: "neigh.harness_vs_raw_socket",
        value: neigh_raw / neigh_h,
        unit: "ratio",
    });
    if let Some(ip) = neigh_ip {
        figures.push(Figure {
            name: "neigh.ip_batch_adds_per_s",
            value: args.neighbours as f64 / ip,
            unit: "1/s",
        });
        figures.push(Figure {
            name: "neigh.speedup_vs_ip_batch",
            value: ip / neigh_h,
            unit: "ratio",
        });
    }
    if !scripted.is_empty() {
        let s = median(&scripted);
        figures.insert(
            1,
            Figure {
                name: "topology.script",
                value: s * 1e3,
                unit: "ms",
            },
        );
        figures.insert(
            3,
            Figure {
                name: "topology.speedup_vs_script",
                value: s / h,
                unit: "ratio",
            },
        );
    }
    for f in &figures {
        if args.format == "json" {
            println!(
                "{}",
                serde_json::json!({"name": f.name, "value": f.value, "unit": f.unit})
            );
        } else {
            println!("{:<32} {:>10.3} {}", f.name, f.value, f.unit);
        }
    }
    if scripted.is_empty() {
        eprintln!("kharness bench: iproute2 `ip` not found; the script baseline was not measured");
    }
    Ok(())
}

fn bare_unshare() -> Result<(), String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
            let f = std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| e.to_string())?;
            drop(f);
            Ok(())
        })
        .join()
        .map_err(|_| "unshare thread panicked".to_string())?
    })
}

fn snapshot_cost() -> Result<f64, String> {
    let ns = NetNs::new("bench").map_err(|e| e.to_string())?;
    let (a, _b) = ns
        .run(|| -> std::io::Result<_> {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            let c = std::net::TcpStream::connect(l.local_addr()?)?;
            let (s, _) = l.accept()?;
            Ok((c, s))
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    use std::os::fd::AsFd;
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(SockSnapshot::take(a.as_fd()).map_err(|e| e.to_string())?);
    }
    Ok(t.elapsed().as_secs_f64() / n as f64)
}
