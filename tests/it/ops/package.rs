//! What an install needs besides the unit: the sysusers.d file that
//! creates the service user (run by `systemd-sysusers` into a temporary
//! root when the tool is installed), the `cargo deb` metadata, whose
//! files must exist and agree with the unit and with what lintian checks,
//! and the man pages and shell completions the real binary generates for
//! the package. `cargo deb` and lintian themselves are not run here (they
//! need a release build): `packaging/check` runs them.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{CommandFactory, ValueEnum};
use recsched::cli::completions::Shell;
use recsched::cli::Cli;

use crate::common::bin::Recsched;

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
    assert_eq!(target("target/packaging/man/*.8"), "usr/share/man/man8/");
    // Where each shell looks for a package's completions.
    assert_eq!(
        target("target/packaging/completions/recsched.bash"),
        "usr/share/bash-completion/completions/recsched"
    );
    assert_eq!(
        target("target/packaging/completions/_recsched"),
        "usr/share/zsh/vendor-completions/_recsched"
    );
    assert_eq!(
        target("target/packaging/completions/recsched.fish"),
        "usr/share/fish/vendor_completions.d/recsched.fish"
    );
    assert_eq!(
        target("debian/lintian-overrides"),
        "usr/share/lintian/overrides/recsched"
    );
    // cargo-deb packages only files that exist: packaging/build-deb must
    // write every generated asset before it runs `cargo deb`.
    let build = read("packaging/build-deb");
    assert!(build.contains("out=target/packaging\n"), "{build}");
    for (source, _) in &assets {
        if let Some(generated) = source.strip_prefix("target/packaging/") {
            let written = generated
                .split('/')
                .next()
                .filter(|_| generated.contains('*'));
            let written = written.map_or_else(|| generated.to_owned(), str::to_owned);
            assert!(
                build.contains(&format!("\"$out/{written}\"")),
                "packaging/build-deb does not write {source}"
            );
        }
    }
    for script in ["packaging/build-deb", "packaging/check"] {
        let mode = std::fs::metadata(repo(script))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{script} must be executable");
    }
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

#[test]
fn deb_description_changelog_and_copyright_are_what_lintian_expects() {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let package = &manifest["package"];
    let deb = &package["metadata"]["deb"];

    // A name and an address (lintian: malformed-contact).
    let maintainer = deb["maintainer"].as_str().unwrap();
    let (name, address) = maintainer
        .strip_suffix('>')
        .and_then(|m| m.split_once(" <"))
        .unwrap_or_else(|| panic!("maintainer {maintainer:?} is not `Name <address>`"));
    assert!(
        !name.trim().is_empty() && address.contains('@'),
        "{maintainer}"
    );

    // A few plain paragraphs, not the README: lines fit in 80 columns
    // and nothing looks like Markdown or an unindented list.
    let description = deb["extended-description"].as_str().unwrap();
    let lines: Vec<&str> = description.lines().collect();
    assert!((3..=30).contains(&lines.len()), "{} lines", lines.len());
    for line in lines {
        assert!(line.chars().count() <= 80, "too long: {line}");
        assert!(
            !["```", "#", "- ", "* ", "|", "1. "]
                .iter()
                .any(|p| line.starts_with(p)),
            "not plain text: {line}"
        );
    }

    // The changelog's top entry is this version, as cargo-deb numbers it
    // (revision 1), signed by the maintainer with an RFC 2822 date.
    let version = package["version"].as_str().unwrap();
    let changelog = read(deb["changelog"].as_str().unwrap());
    let first = changelog.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("recsched ({version}-1) unstable; urgency=")),
        "debian/changelog does not start with version {version}-1: {first}"
    );
    let trailer = changelog
        .lines()
        .find(|l| l.starts_with(" -- "))
        .expect("a ` -- maintainer  date` line");
    let (signed_by, date) = trailer[4..].split_once("  ").unwrap();
    assert_eq!(signed_by, maintainer);
    chrono::DateTime::parse_from_rfc2822(date).unwrap_or_else(|e| panic!("{date}: {e}"));

    // A notice and both licences the manifest names.
    assert_eq!(package["license"].as_str(), Some("MIT OR Apache-2.0"));
    let copyright = read(deb["license-file"].as_str().unwrap());
    assert!(copyright.starts_with(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
    ));
    assert!(copyright.contains("\nCopyright: 20"), "no copyright notice");
    for licence in ["MIT", "Apache-2.0"] {
        assert!(
            copyright.contains(&format!("\nLicense: {licence}\n")),
            "{licence}"
        );
    }
    assert!(copyright.contains("/usr/share/common-licenses/Apache-2.0"));
}

#[test]
fn every_lintian_override_says_why_and_matches_the_package() {
    let overrides = read("debian/lintian-overrides");
    let mut reason = false;
    let mut tags = Vec::new();
    for line in overrides.lines() {
        if line.trim().is_empty() {
            reason = false;
        } else if line.starts_with('#') {
            reason = true;
        } else {
            assert!(reason, "override without a reason above it: {line}");
            tags.push(line);
        }
    }
    // The config's mode, kept 0640 (the service reads it through its
    // group, which postinst sets): the override names the mode Cargo.toml
    // gives it, so changing one without the other fails here.
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let config = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a[0].as_str() == Some("config/recsched.toml"))
        .unwrap();
    assert_eq!(config[2].as_str(), Some("640"));
    assert!(
        tags.contains(
            &"recsched: non-standard-file-perm 0640 != 0644 [etc/recsched/recsched.toml]"
        ),
        "{tags:?}"
    );
    let postinst = read("systemd/deb/postinst");
    assert!(postinst.contains("chgrp recsched /etc/recsched /etc/recsched/recsched.toml"));
}

/// Every command below `recsched`, as its path of names (`["policy",
/// "add"]`), read from the clap definition itself, so a new subcommand is
/// expected in the pages and completions without editing these tests.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            path.push(sub.get_name().to_owned());
            out.push(path.clone());
            walk(sub, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &mut Vec::new(), &mut out);
    assert!(
        out.len() > 10 && out.contains(&vec!["policy".to_owned(), "add".to_owned()]),
        "{out:?}"
    );
    out
}

/// The names of the direct subcommands of `parent` (`[]` for `recsched`).
fn children<'a>(paths: &'a [Vec<String>], parent: &[String]) -> Vec<&'a str> {
    paths
        .iter()
        .filter(|p| p.len() == parent.len() + 1 && p.starts_with(parent))
        .map(|p| p[parent.len()].as_str())
        .collect()
}

#[test]
fn manpages_cover_every_command_and_render() {
    let paths = command_paths();
    let out = tempfile::tempdir().unwrap();
    // A directory that does not exist yet, as on a fresh prefix.
    let dir = out.path().join("share/man/man8");
    let run = Recsched::new().ok(&["manpages", dir.to_str().unwrap()]);

    let page_name = |path: &[String]| {
        std::iter::once("recsched")
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("-")
    };
    let mut expected: BTreeSet<String> = paths.iter().map(|p| page_name(p) + ".8").collect();
    expected.insert("recsched.8".to_owned());
    let written: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(written, expected, "one page per command, and nothing else");
    assert_eq!(run.stdout.lines().count(), expected.len(), "{run:?}");

    let man = Command::new("man").arg("--version").output().is_ok();
    if !man {
        eprintln!(
            "SKIPPED rendering the pages: man (man-db) not found; packaging/check renders them"
        );
    }
    for parent in std::iter::once(Vec::new()).chain(paths.iter().cloned()) {
        let name = page_name(&parent);
        let file = dir.join(format!("{name}.8"));
        let roff = std::fs::read_to_string(&file).unwrap();
        let escaped = |s: &str| s.replace('-', "\\-");
        assert!(
            roff.contains(&format!(".SH NAME\n{} \\- ", escaped(&name))),
            "{name}: no NAME line:\n{roff}"
        );
        // A parent page lists each subcommand's own page.
        for child in children(&paths, &parent) {
            let reference = format!("{}(8)", escaped(&format!("{name}-{child}")));
            assert!(
                roff.contains(&reference),
                "{name}.8 does not name {reference}"
            );
        }
        if man {
            let rendered = Command::new("man")
                .args(["--warnings", "-l"])
                .arg(&file)
                .env("MANWIDTH", "80")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&rendered.stderr);
            let text = String::from_utf8_lossy(&rendered.stdout);
            assert!(
                rendered.status.success() && stderr.is_empty(),
                "{name}.8: {stderr}"
            );
            assert!(
                text.contains("SYNOPSIS") && text.contains(&name),
                "{name}.8:\n{text}"
            );
        }
    }
}

#[test]
fn completions_cover_every_command_in_each_shell() {
    let paths = command_paths();
    let r = Recsched::new();
    let shells = Shell::value_variants();
    assert_eq!(shells.len(), 3, "bash, zsh and fish are packaged");
    let dir = tempfile::tempdir().unwrap();

    for shell in shells {
        let name = shell.to_possible_value().unwrap().get_name().to_owned();
        let script = r.ok(&["completions", &name]).stdout;
        assert!(script.len() > 1000, "{name}: {} bytes", script.len());
        let file = dir.path().join(&name);
        std::fs::write(&file, &script).unwrap();
        for path in &paths {
            let sub = path.last().unwrap();
            let entry = match shell {
                // `case "${cmd},${i}"` arms: recsched,policy / ..._policy,add
                Shell::Bash => format!(",{sub})"),
                // _describe entries: 'add:Add a policy...'
                Shell::Zsh => format!("'{sub}:"),
                Shell::Fish => format!("-a \"{sub}\""),
            };
            assert!(script.contains(&entry), "{name}: no {entry} for {path:?}");
        }
        // Syntax check where the shell is installed (bash always is).
        let check = Command::new(&name).arg("-n").arg(&file).output();
        match check {
            Ok(out) => assert!(
                out.status.success(),
                "{name} -n: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) if *shell != Shell::Bash && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot run {name}: {e}"),
        }
    }

    // Bash, for real: after each command with subcommands, <TAB> offers
    // every one of them; after `completions`, every shell.
    let bash = dir.path().join("bash");
    let parents = std::iter::once(Vec::new()).chain(
        paths
            .iter()
            .filter(|p| !children(&paths, p).is_empty())
            .cloned(),
    );
    let mut cases: Vec<(Vec<String>, Vec<String>)> = parents
        .map(|p| {
            let want = children(&paths, &p)
                .into_iter()
                .map(str::to_owned)
                .collect();
            (p, want)
        })
        .collect();
    let shell_names = shells
        .iter()
        .map(|s| s.to_possible_value().unwrap().get_name().to_owned())
        .collect();
    cases.push((vec!["completions".to_owned()], shell_names));
    for (words, want) in cases {
        let line: Vec<String> = std::iter::once("recsched".to_owned())
            .chain(words)
            .collect();
        let prev = line.last().unwrap();
        let script = format!(
            "source {}; COMP_WORDS=({} ''); COMP_CWORD={}; _recsched recsched '' {prev}; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display(),
            line.join(" "),
            line.len(),
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let offered = String::from_utf8_lossy(&out.stdout);
        let offered: BTreeSet<&str> = offered.lines().collect();
        for name in &want {
            assert!(
                offered.contains(name.as_str()),
                "`{}` <TAB>: no {name} in {offered:?}",
                line.join(" ")
            );
        }
    }
}
