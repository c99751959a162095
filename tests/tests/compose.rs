//! The Docker Compose stack users start: the file validates with the Compose tool present (the
//! `docker compose` plugin, or a standalone `docker-compose` of version 2), both profiles hold the services
//! the docs promise, and `.env.example` documents every variable the file reads.
//!
//! Where a `docker` client exists but no Compose v2 tool does, the test fails and says how to get
//! one (`scripts/test.sh` fetches Debian's Compose v2 through `scripts/services/compose.sh`). Where there is no
//! `docker` client at all, the validation is reported as not run on the real stderr; the checks
//! that need no tool still run.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn read(name: &str) -> String {
    let path = root().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The Compose v2 command line, if one is installed. Compose v1 (`docker-compose` 1.x) does
/// not implement the Compose specification and is not used.
fn compose_tool() -> Option<Vec<&'static str>> {
    if works("docker", &["compose", "version"]) {
        return Some(vec!["docker", "compose"]);
    }
    let v2 = Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            o.status.success() && (text.contains("version v2.") || text.contains("version 2."))
        });
    v2.then(|| vec!["docker-compose"])
}

/// Runs the Compose tool on the repository's file with `.env.example` as its environment file.
fn compose(tool: &[&str], args: &[&str]) -> String {
    let root = root();
    let output = Command::new(tool[0])
        .args(&tool[1..])
        .args(["--project-directory", root.to_str().expect("utf-8 path")])
        .args(["-f", "docker-compose.yml", "--env-file", ".env.example"])
        .args(args)
        .current_dir(&root)
        // Only the file's own defaults and .env.example: nothing from the caller's environment.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .output()
        .unwrap_or_else(|e| panic!("running {tool:?}: {e}"));
    assert!(
        output.status.success(),
        "{} {} failed:\n{}",
        tool.join(" "),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn services(tool: &[&str], profile: Option<&str>) -> BTreeSet<String> {
    let mut args = Vec::new();
    if let Some(profile) = profile {
        args.extend(["--profile", profile]);
    }
    args.extend(["config", "--services"]);
    compose(tool, &args)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_compose_file_validates_and_both_profiles_hold_their_services() {
    let Some(tool) = compose_tool() else {
        if works("docker", &["--version"]) {
            panic!(
                "a docker client is installed but no Compose v2 tool: install the compose plugin \
                 (docker-compose-plugin), or run `bash scripts/test.sh`, which fetches Debian's \
                 Compose v2 (`source scripts/services/compose.sh` does just that)"
            );
        }
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN: docker-compose.yml validation: no docker client on this machine"
        );
        return;
    };
    compose(&tool, &["config", "-q"]);
    let base = services(&tool, None);
    for service in [
        "timescaledb",
        "minio",
        "minio-init",
        "prometheus",
        "grafana",
    ] {
        assert!(
            base.contains(service),
            "{service} runs without a profile: {base:?}"
        );
    }
    for service in ["cflogs", "cflogs-demo", "cflogs-sim"] {
        assert!(
            !base.contains(service),
            "{service} needs a profile: {base:?}"
        );
    }
    let demo = services(&tool, Some("demo"));
    assert!(
        demo.contains("cflogs-sim") && demo.contains("cflogs-demo"),
        "{demo:?}"
    );
    assert!(
        !demo.contains("cflogs"),
        "the demo profile does not call Cloudflare: {demo:?}"
    );
    let live = services(&tool, Some("live"));
    assert!(
        live.contains("cflogs") && !live.contains("cflogs-sim"),
        "{live:?}"
    );
}

/// `${NAME}`, `${NAME:-default}`, `${NAME?err}`… references in `text`.
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let name: String = rest[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
        rest = &rest[at + 2..];
    }
    out
}

/// The variables `.env.example` sets, commented out or not (`NAME=` or `# NAME=`).
fn documented() -> BTreeSet<String> {
    read(".env.example")
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches('#').trim();
            let (name, _) = line.split_once('=')?;
            (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn env_example_documents_every_variable_the_compose_file_reads() {
    let used = references(&read("docker-compose.yml"));
    assert!(
        used.len() >= 5,
        "the compose file reads its settings from .env: {used:?}"
    );
    let documented = documented();
    let missing: Vec<_> = used.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        ".env.example does not document {missing:?}, which docker-compose.yml reads"
    );
}

#[test]
fn the_reference_scanner_finds_names_with_and_without_defaults() {
    let found = references("a: ${PG_USER:-cflogs}\nb: \"${S3_BUCKET}\" c: $$not ${X?required}");
    assert_eq!(
        found,
        ["PG_USER", "S3_BUCKET", "X"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}
