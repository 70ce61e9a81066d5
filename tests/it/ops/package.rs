//! What an install needs besides the unit: the sysusers.d file that
//! creates the service user (run by `systemd-sysusers` into a temporary
//! root when the tool is installed), and the `cargo deb` metadata, whose
//! files must exist and agree with the unit. `cargo deb` itself is not
//! run here (it needs a release build and `cargo install cargo-deb`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn sysusers_file_creates_the_user_and_group_the_unit_runs_as() {
    let unit = read("systemd/recsched.service");
    assert!(unit.contains("\nUser=recsched\n") && unit.contains("\nGroup=recsched\n"));

    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let output = match Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(repo("systemd/recsched.sysusers"))
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED sysusers test: systemd-sysusers not found; it runs on CI");
            return;
        }
        Err(e) => panic!("cannot run systemd-sysusers: {e}"),
    };
    assert!(
        output.status.success(),
        "systemd-sysusers refused the file: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("recsched:"))
        .unwrap_or_else(|| panic!("no recsched in passwd:\n{passwd}"))
        .split(':')
        .collect();
    assert_eq!(user[5], "/var/lib/recsched", "home is the state directory");
    assert_eq!(user[6], "/usr/sbin/nologin");
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    assert!(group.lines().any(|l| l.starts_with("recsched:")), "{group}");
}

#[test]
fn deb_metadata_names_files_that_exist_and_agree_with_the_unit() {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];

    let scripts = deb["maintainer-scripts"].as_str().unwrap();
    let postinst = repo(scripts).join("postinst");
    let mode = std::fs::metadata(&postinst).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "postinst must be executable");
    let postinst = std::fs::read_to_string(postinst).unwrap();
    assert!(postinst.contains("systemd-sysusers /usr/lib/sysusers.d/recsched.conf"));

    let assets: Vec<(&str, &str)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a[0].as_str().unwrap(), a[1].as_str().unwrap()))
        .collect();
    for (source, _) in &assets {
        if !source.starts_with("target/") {
            assert!(repo(source).is_file(), "asset {source} does not exist");
        }
    }
    let target = |source: &str| {
        assets
            .iter()
            .find(|(s, _)| *s == source)
            .unwrap_or_else(|| panic!("{source} is not packaged"))
            .1
    };
    assert_eq!(target("target/release/recsched"), "usr/bin/");
    assert_eq!(
        target("systemd/recsched.sysusers"),
        "usr/lib/sysusers.d/recsched.conf"
    );
    assert_eq!(target("config/recsched.toml"), "etc/recsched/");
    assert_eq!(
        deb["conf-files"].as_array().unwrap()[0].as_str(),
        Some("/etc/recsched/recsched.toml")
    );

    // The drop-in points the unit's own ExecStart at the packaged binary
    // and changes nothing else.
    let unit = read("systemd/recsched.service");
    let exec = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap()
        .replace("/usr/local/bin/", "/usr/bin/");
    let drop_in = read("systemd/deb/usr-bin.conf");
    let lines: Vec<&str> = drop_in
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(lines, ["[Service]", "ExecStart=", exec.as_str()]);
}
