//! Federation between real nodes: a node answers for documents its peers hold
//! (`[node] peers`), never forwards a federated lookup again, and forgets a peer's
//! answer once `peer_cache_seconds` passed.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, free_port, run, write_file};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);

const UNIT: &str = "urn:city:buildings";
const SITE: &str = "urn:site:b";
const INSTANCE: &str = "urn:city:buildings-b";

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}

/// A node started with `--config` (and `--listen` on the address it was given).
fn start_with_config(dir: &Path, name: &str, config: &str) -> Server {
    let file = write_file(dir, &format!("{name}.toml"), config);
    Server::start_in(&dir.join(format!("data-{name}")), dir, |cmd, addr| {
        cmd.arg("--config").arg(&file).arg("--listen").arg(addr.to_string());
    })
}

fn peers_config(peers: &[(&str, &str)], cache_seconds: u64) -> String {
    let list: Vec<String> = peers.iter().map(|(n, u)| format!("{{ name = \"{n}\", url = \"{u}\" }}")).collect();
    format!("[node]\npeers = [{}]\npeer_cache_seconds = {cache_seconds}\n", list.join(", "))
}

/// Applies a site, a unit in two versions and an instance at `server`.
fn seed(server: &Server, dir: &Path) {
    let unit = |version: &str, views: Value| json!({"@type": "DataUnit", "name": UNIT, "version": version, "metainformation": {"type": "rest"}, "views": views});
    let v1 = json!([
        {"@type": "Site", "name": SITE, "version": "1", "tier": "fog", "region": "test"},
        unit("1", json!([{"name": "blocks", "link": "/blocks"}])),
        {"@type": "DataInstance", "name": INSTANCE, "version": "1", "dataUnit": UNIT,
         "site": SITE, "endpoint": "http://127.0.0.1:9"}
    ]);
    let f = write_file(dir, "seed-1.json", &v1.to_string());
    server.civitas(&["apply", "-f", f.to_str().unwrap()]).ok();
    let v2 =
        json!([unit("2", json!([{"name": "blocks", "link": "/blocks"}, {"name": "heights", "link": "/heights"}]))]);
    let f = write_file(dir, "seed-2.json", &v2.to_string());
    server.civitas(&["apply", "-f", f.to_str().unwrap()]).ok();
}

struct Answer {
    status: u16,
    owner: Option<String>,
    etag: Option<String>,
    body: String,
}

async fn get(url: &str, federated: bool) -> Answer {
    let mut req = http().get(url);
    if federated {
        req = req.header("x-civitas-federated", "1");
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let header = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (status, owner, etag) = (r.status().as_u16(), header("x-civitas-owner"), header("etag"));
    Answer { status, owner, etag, body: r.text().await.unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_for_what_its_peer_holds_and_forgets_it_after_the_cache_time() {
    let temp = tempfile::tempdir().unwrap();
    let b = Server::start();
    seed(&b, temp.path());
    let a = start_with_config(temp.path(), "a", &peers_config(&[("b", &b.url)], 1));

    // A holds nothing; B's unit, site and instance resolve through A, as B serves them.
    for path in [
        format!("/api/v1/units/{UNIT}"),
        format!("/api/v1/sites/{SITE}"),
        format!("/api/v1/instances/{INSTANCE}"),
        format!("/api/v1/units/{UNIT}?version=1"),
    ] {
        let at_b = get(&format!("{}{path}", b.url), false).await;
        assert_eq!(at_b.status, 200, "{path} at B: {}", at_b.body);
        assert_eq!(at_b.owner, None, "B holds {path} itself");
        let at_a = get(&format!("{}{path}", a.url), false).await;
        assert_eq!(at_a.status, 200, "{path} at A: {}", at_a.body);
        assert_eq!(at_a.owner.as_deref(), Some("b"), "{path}");
        assert_eq!(at_a.body, at_b.body, "{path}: A answers with B's document");
        assert!(at_a.etag.is_some() && at_a.etag == at_b.etag, "{path}: B's ETag {:?} vs {:?}", at_b.etag, at_a.etag);
    }
    let old: Value =
        serde_json::from_str(&get(&format!("{}/api/v1/units/{UNIT}?version=1", a.url), false).await.body).unwrap();
    assert_eq!(old["version"], "1", "{old:#}");

    // The CLI sees it too.
    let out: Value = serde_json::from_str(a.civitas(&["get", "unit", UNIT, "-o", "json"]).ok()).unwrap();
    assert_eq!(out["name"], UNIT, "{out:#}");
    assert_eq!(out["version"], "2", "{out:#}");
    let out: Value = serde_json::from_str(a.civitas(&["get", "unit", UNIT, "--version", "1", "-o", "json"]).ok())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out["version"], "1", "{out:#}");

    // A name nobody holds is 404 at A; a federated lookup is answered locally only.
    let missing = get(&format!("{}/api/v1/units/urn:city:nobody", a.url), false).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.body.contains("not-found"), "{}", missing.body);
    let federated = get(&format!("{}/api/v1/units/{UNIT}", a.url), true).await;
    assert_eq!(federated.status, 404, "a federated lookup must not be forwarded: {}", federated.body);

    // B deletes the unit: once the cache time passed, A answers 404 again.
    b.civitas(&["delete", "unit", UNIT, "--cascade"]).ok();
    assert_eq!(get(&format!("{}/api/v1/units/{UNIT}", b.url), false).await.status, 404);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = get(&format!("{}/api/v1/units/{UNIT}", a.url), false).await;
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(Instant::now() < deadline, "A still serves the deleted unit after {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.civitas(&["get", "unit", UNIT]).fails_with(1);
}

/// Two nodes that are each other's peer: B on a random port, A on a port B was told before.
fn peer_pair(dir: &Path) -> (Server, Server) {
    for attempt in 0..5 {
        let a_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let b =
            start_with_config(dir, &format!("b{attempt}"), &peers_config(&[("a", &format!("http://{a_addr}"))], 30));
        let file = write_file(dir, &format!("a{attempt}.toml"), &peers_config(&[("b", &b.url)], 30));
        match Server::try_start_at(&dir.join(format!("data-a{attempt}")), dir, a_addr, |cmd, addr| {
            cmd.arg("--config").arg(&file).arg("--listen").arg(addr.to_string());
        }) {
            Ok(a) => return (a, b),
            Err(log) if log.to_ascii_lowercase().contains("in use") => continue,
            Err(log) => panic!("node A did not start:\n{log}"),
        }
    }
    panic!("no free port for node A in 5 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_of_each_other_do_not_ping_pong() {
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = peer_pair(temp.path());
    seed(&b, temp.path());

    // Both directions resolve…
    let at_a = get(&format!("{}/api/v1/units/{UNIT}", a.url), false).await;
    assert_eq!((at_a.status, at_a.owner.as_deref()), (200, Some("b")), "{}", at_a.body);
    let a_site = json!([{"@type": "Site", "name": "urn:site:a", "version": "1", "tier": "cloud", "region": "test"}]);
    let f = write_file(temp.path(), "site-a.json", &a_site.to_string());
    a.civitas(&["apply", "-f", f.to_str().unwrap()]).ok();
    let at_b = get(&format!("{}/api/v1/sites/urn:site:a", b.url), false).await;
    assert_eq!((at_b.status, at_b.owner.as_deref()), (200, Some("a")), "{}", at_b.body);

    // …and a name neither holds is 404 at once at both, well within one peer timeout (2 s):
    // each asks the other once, and the other answers from its own catalog only.
    for (node, name) in [(&a, "urn:city:nobody-1"), (&b, "urn:city:nobody-2"), (&a, "urn:city:nobody-3")] {
        let started = Instant::now();
        let r = get(&format!("{}/api/v1/units/{name}", node.url), false).await;
        let took = started.elapsed();
        assert_eq!(r.status, 404, "{}", r.body);
        assert!(took < Duration::from_millis(1_500), "404 took {took:?}: the lookup bounced between the nodes");
    }
}

#[test]
fn a_bad_peer_url_stops_the_node_naming_the_key() {
    let temp = tempfile::tempdir().unwrap();
    let config = write_file(temp.path(), "bad.toml", "[node]\npeers = [{ name = \"b\", url = \"ftp://b.example\" }]\n");
    let mut cmd = common::civitas_command();
    cmd.arg("serve").arg("--config").arg(&config).arg("--data-dir").arg(temp.path().join("data"));
    cmd.arg("--listen").arg(format!("127.0.0.1:{}", free_port()));
    let out = run(cmd);
    assert!(!out.status.success(), "civitas serve started with a bad peer URL:\n{}", out.stdout);
    assert!(out.stderr.contains("node.peers[0].url"), "{}", out.stderr);
}
