//! Serves the node's ledger routes (`civitas-node/src/ledger_api.rs`, compiled from its own
//! file) on their own, for `bench/ledger.sh` to load with `wrk` when the `civitas` binary at
//! hand has no `ledger` verbs yet.
//!
//! ```text
//! cargo run --release -p civitas-ledger --example ledger_http_server -- --data-dir DIR --listen 127.0.0.1:17172
//! ```

#[allow(dead_code)]
#[path = "../../civitas-node/src/ledger_api.rs"]
mod ledger_api;

use std::path::PathBuf;
use std::sync::Arc;

use civitas_ledger::{Ledger, LedgerOptions, NodeKey, Witness};

fn main() {
    let mut data_dir = PathBuf::from("ledger-bench-data");
    let mut listen = "127.0.0.1:17172".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data-dir" => data_dir = args.next().expect("--data-dir DIR").into(),
            "--listen" => listen = args.next().expect("--listen ADDR"),
            other => panic!("unknown argument {other}; usage: --data-dir DIR --listen ADDR"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let ledger = Arc::new(
            Ledger::open(data_dir.join("ledger"), LedgerOptions::new("civitas.bench/ledger/http"))
                .expect("open ledger"),
        );
        let key = Arc::new(NodeKey::load_or_create(&data_dir.join("node.key")).expect("node key"));
        let witness = Arc::new(
            Witness::open(data_dir.join("witness.json"), key.witness_signer("civitas.bench/witness/http").unwrap())
                .expect("witness"),
        );
        let app: axum::Router = ledger_api::router(ledger, key, witness);
        let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
        eprintln!("ledger API on http://{}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}
