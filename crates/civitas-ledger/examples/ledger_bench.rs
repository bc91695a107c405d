//! Embedded ledger benchmark: batched and single appends (durable, group commit), proof
//! generation + verification at a large tree size, reopen (full verification) time, and two
//! peers measured in the same run on the same disk: the raw fsync rate and in-process
//! SHA-256 throughput, so the figures can be read as ratios.
//!
//! ```text
//! cargo run --release -p civitas-ledger --example ledger_bench -- [--size N] [--dir DIR] [--quick]
//! ```
//!
//! Progress goes to stderr; results to stdout as `RESULT <name> <value> <unit>` lines
//! (parsed by `bench/ledger.sh`) after human-readable lines.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use civitas_ledger::merkle::leaf_hash;
use civitas_ledger::{Entry, EntryKind, Ledger, LedgerOptions, NodeKey};
use serde_json::json;

const ORIGIN: &str = "civitas.bench/ledger/bench";

fn deal(i: u64) -> Entry {
    Entry::new(
        EntryKind::Deal,
        json!({
            "deal": i,
            "requester": "urn:civitas:app:click-redirector",
            "provider": format!("urn:civitas:site:vienna-edge-{}", i % 17),
            "priceMicros": i * 37 % 100_000,
        }),
    )
    .expect("a valid entry")
}

struct Args {
    size: u64,
    dir: Option<std::path::PathBuf>,
    quick: bool,
}

fn args() -> Args {
    let mut args = Args { size: 10_000_000, dir: None, quick: false };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size" => args.size = it.next().and_then(|v| v.replace('_', "").parse().ok()).expect("--size N"),
            "--dir" => args.dir = it.next().map(Into::into),
            "--quick" => args.quick = true,
            other => panic!("unknown argument {other}; usage: [--size N] [--dir DIR] [--quick]"),
        }
    }
    if args.quick {
        args.size = args.size.min(1_000_000);
    }
    args
}

fn result(name: &str, value: f64, unit: &str) {
    println!("RESULT {name} {value:.3} {unit}");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args = args();
    let tmp;
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().to_path_buf()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // ---- peers: raw fsync rate and SHA-256 throughput --------------------------------------
    std::fs::create_dir_all(&base).unwrap();
    let fsync_rate = {
        let path = base.join("fsync.peer");
        let file = std::fs::File::create(&path).unwrap();
        let block = vec![0x5au8; 4096];
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(2) {
            file.write_all_at(&block, n * 4096).unwrap();
            file.sync_data().unwrap();
            n += 1;
        }
        std::fs::remove_file(&path).ok();
        n as f64 / start.elapsed().as_secs_f64()
    };
    let sha_mb_s = {
        let data = vec![0xa5u8; 64 << 20];
        let start = Instant::now();
        let mut acc = 0u8;
        for _ in 0..4 {
            acc ^= leaf_hash(&data).0[0];
        }
        std::hint::black_box(acc);
        (4.0 * 64.0) / start.elapsed().as_secs_f64()
    };
    println!("peer: {fsync_rate:.0} fsyncs/s (4 KiB write + fdatasync, one at a time); SHA-256 {sha_mb_s:.0} MB/s");
    result("peer_fsync_per_s", fsync_rate, "1/s");
    result("peer_sha256_mb_per_s", sha_mb_s, "MB/s");
    let entry_bytes = deal(123_456).to_canonical().unwrap().len();
    println!("entries are ~{entry_bytes} bytes of canonical JSON");
    result("entry_bytes", entry_bytes as f64, "B");

    let dir = base.join("ledger");
    let _ = std::fs::remove_dir_all(&dir);
    let ledger = Arc::new(Ledger::open(&dir, LedgerOptions::new(ORIGIN)).unwrap());

    // ---- batched appends: 4 concurrent appenders, batches of 1,000 -------------------------
    let batched_total: u64 = if args.quick { 400_000 } else { 2_000_000 };
    let rate = runtime.block_on(async {
        let start = Instant::now();
        let per_task = batched_total / 4;
        let tasks: Vec<_> = (0..4u64)
            .map(|t| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let mut i = t * per_task;
                    while i < (t + 1) * per_task {
                        ledger.append_batch((i..i + 1000).map(deal).collect()).await.unwrap();
                        i += 1000;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        batched_total as f64 / start.elapsed().as_secs_f64()
    });
    println!("batched appends (4 appenders x batches of 1,000, fsync per commit): {rate:.0} entries/s");
    result("batched_append_entries_per_s", rate, "1/s");

    // ---- one appender, batches of 1,000: every batch its own fsync -------------------------
    let rate1 = runtime.block_on(async {
        let start = Instant::now();
        let n = batched_total / 4;
        let mut i = 0;
        while i < n {
            ledger.append_batch((i..i + 1000).map(deal).collect()).await.unwrap();
            i += 1000;
        }
        n as f64 / start.elapsed().as_secs_f64()
    });
    println!("batched appends (1 appender, batches of 1,000, one fsync each): {rate1:.0} entries/s");
    result("batched_append_single_appender_entries_per_s", rate1, "1/s");

    // ---- single-entry appends from 256 concurrent tasks (what the HTTP path does) ---------
    let (single_rate, p50, p99) = runtime.block_on(async {
        let run_for = Duration::from_secs(if args.quick { 2 } else { 5 });
        let start = Instant::now();
        let tasks: Vec<_> = (0..256u64)
            .map(|t| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut i = 0u64;
                    while start.elapsed() < run_for {
                        let t0 = Instant::now();
                        ledger.append(deal(t << 32 | i)).await.unwrap();
                        latencies.push(t0.elapsed().as_secs_f64() * 1e3);
                        i += 1;
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let rate = all.len() as f64 / start.elapsed().as_secs_f64();
        all.sort_by(f64::total_cmp);
        (rate, percentile(&all, 0.5), percentile(&all, 0.99))
    });
    println!(
        "single appends (256 concurrent tasks, group commit): {single_rate:.0} entries/s, p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    result("single_append_entries_per_s", single_rate, "1/s");
    result("single_append_p50_ms", p50, "ms");
    result("single_append_p99_ms", p99, "ms");

    // ---- grow to the proof size -------------------------------------------------------------
    let target = args.size.max(ledger.size());
    let before = ledger.size();
    let grow_start = Instant::now();
    runtime.block_on(async {
        let mut last_report = Instant::now();
        while ledger.size() < target {
            let from = ledger.size();
            let n = (target - from).min(10_000);
            let futures: Vec<_> = (0..2u64)
                .map(|k| {
                    let ledger = ledger.clone();
                    let half = n / 2;
                    let (a, b) = if k == 0 { (from, from + half) } else { (from + half, from + n) };
                    tokio::spawn(async move { ledger.append_batch((a..b).map(deal).collect()).await.unwrap() })
                })
                .collect();
            for f in futures {
                f.await.unwrap();
            }
            if last_report.elapsed() > Duration::from_secs(5) {
                eprintln!("  … {} of {target} entries", ledger.size());
                last_report = Instant::now();
            }
        }
    });
    let grow_rate = (target - before) as f64 / grow_start.elapsed().as_secs_f64();
    println!("grew the ledger to {target} entries (2 appenders x batches of 5,000: {grow_rate:.0} entries/s)");

    // ---- proof generation + verification at the full size -----------------------------------
    let size = ledger.size();
    let signer = NodeKey::from_seed(&[1; 32]).log_signer(ORIGIN).unwrap();
    let checkpoint = runtime.block_on(ledger.checkpoint(&signer)).unwrap();
    let root = checkpoint.checkpoint().root;
    let samples = if args.quick { 20_000 } else { 100_000 };
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut times = Vec::with_capacity(samples);
    let mut generation_only = Vec::with_capacity(samples);
    for _ in 0..samples {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let index = rng % size;
        let t0 = Instant::now();
        let proof = ledger.inclusion_proof(index, size).unwrap();
        let t1 = Instant::now();
        proof.verify(&proof.leaf_hash, &root).unwrap();
        let t2 = Instant::now();
        generation_only.push((t1 - t0).as_secs_f64() * 1e6);
        times.push((t2 - t0).as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    generation_only.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "inclusion proof generation + verification at {size} entries ({samples} random leaves): mean {mean:.1} µs, p50 {:.1} µs, p99 {:.1} µs (generation alone p50 {:.1} µs)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&generation_only, 0.5)
    );
    result("proof_size_entries", size as f64, "entries");
    result("proof_gen_verify_mean_us", mean, "us");
    result("proof_gen_verify_p50_us", percentile(&times, 0.5), "us");
    result("proof_gen_verify_p99_us", percentile(&times, 0.99), "us");

    // ---- reopen with full verification ------------------------------------------------------
    let ledger = Arc::try_unwrap(ledger).expect("no other references");
    drop(ledger);
    let t0 = Instant::now();
    let ledger = Ledger::open(&dir, LedgerOptions::new(ORIGIN)).unwrap();
    let open_s = t0.elapsed().as_secs_f64();
    assert_eq!(ledger.size(), size);
    assert_eq!(ledger.root(size).unwrap(), root);
    println!("reopen with full verification of {size} entries: {open_s:.1} s");
    result("reopen_verify_s", open_s, "s");
    let disk: u64 = walk_size(&dir);
    println!("disk: {:.1} bytes per entry", disk as f64 / size as f64);
    result("disk_bytes_per_entry", disk as f64 / size as f64, "B");
    std::io::stdout().flush().ok();
    drop(ledger);
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn walk_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() { walk_size(&e.path()) } else { m.len() }
                })
                .sum()
        })
        .unwrap_or(0)
}
