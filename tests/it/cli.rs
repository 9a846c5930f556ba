//! The `flowgate` binary: key bootstrap from the command line, and a bad
//! setting stopping the start with a message that names it.

use std::process::Command;

fn flowgate(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(args)
        .env("FLOWGATE_DATA_DIR", data_dir)
        .env("FLOWGATE_LOG", "warn")
        .env_remove("FLOWGATE_API_KEY")
        .output()
        .expect("the binary runs")
}

#[test]
fn keys_are_created_listed_without_secrets_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        flowgate(dir.path(), &["keys", "create", "--tenant", "acme", "--name", "ci", "--env", "production"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(secret.starts_with("fgk_") && secret.len() >= 47, "{secret}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let key_id = stderr.split_whitespace().find(|w| w.starts_with("key_")).unwrap().to_owned();

    let out = flowgate(dir.path(), &["keys", "list", "--tenant", "acme"]);
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(listing.contains(&key_id) && listing.contains("production"));
    assert!(!listing.contains(&secret[10..]), "a listing never shows the secret");
    let other = flowgate(dir.path(), &["keys", "list", "--tenant", "other"]);
    assert!(String::from_utf8(other.stdout).unwrap().trim().is_empty());

    let out = flowgate(dir.path(), &["keys", "revoke", &key_id, "--tenant", "other"]);
    assert!(!out.status.success(), "another tenant cannot revoke it");
    let out = flowgate(dir.path(), &["keys", "revoke", &key_id, "--tenant", "acme"]);
    assert!(out.status.success());
    let out = flowgate(dir.path(), &["keys", "list", "--tenant", "acme"]);
    assert!(!String::from_utf8(out.stdout).unwrap().contains(&key_id));
}

#[test]
fn a_bad_setting_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["serve"])
        .env("FLOWGATE_DATA_DIR", dir.path())
        .env("FLOWGATE_LIMITS__WS_FRAME_BYTES", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap().to_lowercase();
    assert!(stderr.contains("ws_frame_bytes"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["serve", "--listen", "nowhere"])
        .env("FLOWGATE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().to_lowercase().contains("listen"));
}
