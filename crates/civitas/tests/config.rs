//! `civitas serve` configuration: the file, the environment, the flags.

mod common;

use common::{Server, civitas_command, run, write_file};

#[test]
fn an_unknown_config_key_is_an_error_naming_it() {
    let temp = tempfile::tempdir().unwrap();
    let config = write_file(temp.path(), "civitas.toml", "[http]\nlisten_address = \"127.0.0.1:7999\"\n");
    let mut cmd = civitas_command();
    cmd.arg("serve").arg("--config").arg(&config).arg("--data-dir").arg(temp.path().join("data"));
    let err = run(cmd).fails_with(1).to_string();
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("listen_address"), "{err}");
    assert!(err.contains("civitas.toml"), "{err}");

    // The same file through CIVITAS_CONFIG.
    let mut cmd = civitas_command();
    cmd.env("CIVITAS_CONFIG", &config).arg("serve").arg("--data-dir").arg(temp.path().join("data"));
    let err = run(cmd).fails_with(1).to_string();
    assert!(err.contains("listen_address"), "{err}");

    let mut cmd = civitas_command();
    cmd.arg("serve").arg("--config").arg(temp.path().join("missing.toml"));
    let err = run(cmd).fails_with(1).to_string();
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn civitas_http_listen_sets_the_address() {
    let temp = tempfile::tempdir().unwrap();
    let server = Server::start_in(&temp.path().join("data"), temp.path(), |cmd, addr| {
        cmd.env("CIVITAS_HTTP_LISTEN", addr.to_string());
    });
    server.civitas(&["get", "units"]).ok();
}

#[test]
fn the_config_file_sets_the_address_and_flags_win() {
    let temp = tempfile::tempdir().unwrap();
    let server = Server::start_in(&temp.path().join("data"), temp.path(), |cmd, addr| {
        let config = write_file(
            temp.path(),
            &format!("civitas-{}.toml", addr.port()),
            &format!("[http]\nlisten = \"{addr}\"\n"),
        );
        cmd.arg("--config").arg(config);
    });
    server.civitas(&["get", "units"]).ok();

    // A flag wins over the environment.
    let server = Server::start_in(&temp.path().join("data2"), temp.path(), |cmd, addr| {
        cmd.env("CIVITAS_HTTP_LISTEN", "127.0.0.1:1").arg("--listen").arg(addr.to_string());
    });
    server.civitas(&["get", "units"]).ok();
}
