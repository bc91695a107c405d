//! What a node acknowledged survives SIGKILL; SIGTERM shuts it down cleanly.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, write_file};
use serde_json::Value;

const DOCUMENTS: usize = 20;

#[test]
fn acknowledged_documents_survive_sigkill() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let docs = temp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    let listen = |cmd: &mut std::process::Command, addr: std::net::SocketAddr| {
        cmd.arg("--listen").arg(addr.to_string());
    };

    let mut server = Server::start_in(&data_dir, temp.path(), listen);
    for i in 0..DOCUMENTS {
        let file = write_file(
            &docs,
            &format!("site-{i}.json"),
            &format!(
                r#"{{"@type": "Site", "name": "urn:durable:site:s{i}", "version": "1.0", "tier": "fog", "region": "Linz"}}"#
            ),
        );
        let out = server.civitas(&["apply", "-f", file.to_str().unwrap()]).ok().to_string();
        assert_eq!(out, format!("site/urn:durable:site:s{i} created (version 1.0)\n"));
    }
    server.kill();
    assert!(TcpStream::connect(server.addr).is_err(), "the killed node still answers");
    drop(server);

    let server = Server::start_in(&data_dir, temp.path(), listen);
    let listed = server.civitas(&["get", "sites", "-o", "json"]).ok().to_string();
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    let mut names: Vec<&str> = listed.iter().map(|d| d["name"].as_str().unwrap()).collect();
    names.sort();
    let mut expected: Vec<String> = (0..DOCUMENTS).map(|i| format!("urn:durable:site:s{i}")).collect();
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn sigterm_exits_cleanly() {
    let mut server = Server::start();
    server.civitas(&["get", "units"]).ok();
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status after SIGTERM: {status}\n{}", server.log());
}

#[test]
fn sigterm_exits_cleanly_with_a_watch_open() {
    let mut server = Server::start();
    let mut watch = TcpStream::connect(server.addr).unwrap();
    write!(watch, "GET /api/v1/watch HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).unwrap();
    watch.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 12];
    watch.read_exact(&mut head).unwrap();
    assert_eq!(&head[9..12], b"200", "{}", String::from_utf8_lossy(&head));
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status after SIGTERM: {status}\n{}", server.log());
}
