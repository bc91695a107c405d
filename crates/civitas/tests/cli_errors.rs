//! The CLI's error paths: local file errors, server problems mapped back to files,
//! atomic directories, unknown kinds, an unreachable node.

mod common;

use common::{Server, civitas_command, run, write_file};

const SITE: &str =
    r#"{"@type": "Site", "name": "urn:test:site:vienna", "version": "1.0", "tier": "cloud", "region": "Vienna"}"#;

const UNIT: &str = r#"[{"@type": "DataUnit", "name": "urn:test:traffic", "version": "1.0",
  "metainformation": {"type": "rest"},
  "views": [{"name": "urn:test:traffic:counts", "link": "/counts/"}]}]"#;

#[test]
fn invalid_json_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "broken.json", "{\n  \"@type\": \"Site\",\n  \"name\": \n}\n");
    // No node is needed: the file is rejected before any request.
    let mut cmd = civitas_command();
    cmd.args(["--server", "http://127.0.0.1:1", "apply", "-f"]).arg(&file);
    let out = run(cmd);
    let err = out.fails_with(1);
    assert!(err.contains(&format!("{}:4:1: invalid JSON", file.display())), "{err}");
}

#[test]
fn a_bad_reference_in_a_directory_names_the_file_and_stores_nothing() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "10-sites.json", SITE);
    write_file(dir.path(), "20-units.json", UNIT);
    write_file(
        dir.path(),
        "30-instances.yaml",
        "- '@type': DataInstance\n  name: urn:test:traffic:vienna\n  version: '1.0'\n  dataUnit: urn:test:traffic\n  \
         site: urn:test:site:vienna\n\
         - '@type': DataInstance\n  name: urn:test:missing:vienna\n  version: '1.0'\n  dataUnit: urn:test:missing\n  \
         site: urn:test:site:vienna\n",
    );
    let out = server.civitas(&["apply", "-f", dir.path().to_str().unwrap()]);
    let err = out.fails_with(1);
    assert!(err.starts_with("error: Invalid document (422): "), "{err}");
    let instances = dir.path().join("30-instances.yaml");
    assert!(err.contains(&format!("  {}[1] /dataUnit: ", instances.display())), "{err}");
    assert!(err.contains("urn:test:missing"), "{err}");
    // Atomic: nothing of the directory landed.
    server.civitas(&["get", "site", "urn:test:site:vienna"]).fails_with(1);
    server.civitas(&["get", "unit", "urn:test:traffic"]).fails_with(1);
    server.civitas(&["get", "instance", "urn:test:traffic:vienna"]).fails_with(1);
    // Fixed, the same directory applies whole.
    write_file(
        dir.path(),
        "30-instances.yaml",
        "- '@type': DataInstance\n  name: urn:test:traffic:vienna\n  version: '1.0'\n  dataUnit: urn:test:traffic\n  \
         site: urn:test:site:vienna\n",
    );
    let out = server.civitas(&["apply", "-f", dir.path().to_str().unwrap()]).ok().to_string();
    assert_eq!(out.lines().count(), 3, "{out}");
    server.civitas(&["get", "instance", "urn:test:traffic:vienna"]).ok();
}

#[test]
fn validation_errors_of_a_single_file_point_into_it() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "unit.json",
        r#"{"@type": "DataUnit", "name": "urn:test:traffic", "version": "1.0",
            "metainformation": {"type": "rest"}, "views": [{"name": "urn:elsewhere:counts", "link": "/counts/"}]}"#,
    );
    let err = server.civitas(&["apply", "-f", file.to_str().unwrap()]).fails_with(1).to_string();
    assert!(err.contains(&format!("  {} /views/0/name: ", file.display())), "{err}");
}

#[test]
fn an_empty_directory_is_a_local_error() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "notes.txt", "not a document");
    let mut cmd = civitas_command();
    cmd.args(["--server", "http://127.0.0.1:1", "apply", "-f"]).arg(dir.path());
    let err = run(cmd).fails_with(1).to_string();
    assert!(err.contains(&dir.path().display().to_string()) && err.contains("no .json"), "{err}");
}

#[test]
fn an_unknown_kind_lists_the_valid_ones() {
    let mut cmd = civitas_command();
    cmd.args(["get", "unicorns"]);
    let out = run(cmd);
    assert!(!out.status.success());
    assert!(out.stderr.contains("unknown kind \"unicorns\""), "{}", out.stderr);
    for kind in ["units", "instances", "sites", "site-links", "technical-units", "deployment-units", "deployments"] {
        assert!(out.stderr.contains(kind), "{kind} missing from:\n{}", out.stderr);
    }
}

#[test]
fn an_unreachable_node_says_so() {
    let mut cmd = civitas_command();
    cmd.args(["--server", "http://127.0.0.1:1", "get", "units"]);
    let out = run(cmd);
    let err = out.fails_with(1);
    assert!(err.starts_with("error: cannot reach the Civitas node at http://127.0.0.1:1: "), "{err}");
    assert!(err.contains("is `civitas serve` running? set --server or CIVITAS_SERVER"), "{err}");

    // The same through the environment variable.
    let mut cmd = civitas_command();
    cmd.env("CIVITAS_SERVER", "http://127.0.0.1:1").args(["tree", "urn:a:b"]);
    let err = run(cmd).fails_with(1).to_string();
    assert!(err.contains("cannot reach the Civitas node at http://127.0.0.1:1"), "{err}");
}
