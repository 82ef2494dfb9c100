//! docker/ without a Docker engine: the runtime stage of docker/Dockerfile (non-root user,
//! port, volume, healthcheck, and ENTRYPOINT flags parsed by klamm's own flag parser),
//! docker/compose.yaml (broker, volume, a kcat smoke service waiting for the broker), the
//! glibc the binary needs against the runtime base image, and the image's healthcheck and
//! the compose smoke script run against the real binary. The last test breaks the files on
//! purpose and expects every check to notice.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use klamm::BrokerConfig;

/// Where the image keeps its data and which port it serves: the contract.
const DATA_DIR: &str = "/var/lib/klamm";
const PORT: u16 = 9092;

/// The glibc of each Debian release a stage may be based on (the `libc6` package version).
const DEBIAN_GLIBC: &[(&str, (u32, u32))] = &[
    ("bullseye", (2, 31)),
    ("bookworm", (2, 36)),
    ("trixie", (2, 41)),
];

fn docker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docker")
}

fn read(name: &str) -> String {
    let path = docker_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Dockerfile

#[derive(Debug)]
struct Instr {
    line: usize,
    keyword: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    base: String,
    name: Option<String>,
    instrs: Vec<Instr>,
}

/// Instructions grouped by stage: comments dropped, `\` continuations joined.
fn parse_dockerfile(text: &str) -> Result<Vec<Stage>, String> {
    let mut instrs = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue; // also inside a continuation, as Docker does
        }
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        let body = trimmed.strip_suffix('\\');
        acc.push_str(body.unwrap_or(trimmed).trim());
        acc.push(' ');
        if body.is_some() {
            pending = Some((start, acc));
        } else {
            instrs.push((start, acc.trim().to_string()));
        }
    }
    if let Some((line, _)) = pending {
        return Err(format!(
            "line {line}: continuation runs to the end of the file"
        ));
    }
    let mut stages: Vec<Stage> = Vec::new();
    for (line, text) in instrs {
        let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.trim().to_string();
        if keyword == "FROM" {
            let words: Vec<&str> = args
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let base = words
                .first()
                .ok_or(format!("line {line}: FROM without an image"))?;
            if base.contains('$') {
                return Err(format!(
                    "line {line}: FROM {base}: name the image literally (this test does not expand ARGs)"
                ));
            }
            let name = match words.as_slice() {
                [_, r#as, name] if r#as.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                base: base.to_string(),
                name,
                instrs: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instrs.push(Instr {
                line,
                keyword,
                args,
            });
        } else if keyword != "ARG" {
            return Err(format!("line {line}: {keyword} before the first FROM"));
        }
    }
    if stages.is_empty() {
        return Err("no FROM".into());
    }
    Ok(stages)
}

/// `["a", "b"]` (exec form) as a list; None for shell form.
fn exec_form(args: &str) -> Option<Vec<String>> {
    if args.starts_with('[') {
        serde_json::from_str(args).ok()
    } else {
        None
    }
}

/// The Debian release named by an image tag (`rust:1-bookworm`, `debian:trixie-slim`).
fn debian_release(image: &str) -> Option<&'static str> {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = last.split_once(':').map(|(_, t)| t).unwrap_or("latest");
    let tag = tag.split('@').next().unwrap_or(tag);
    DEBIAN_GLIBC
        .iter()
        .map(|(name, _)| *name)
        .find(|name| tag.split('-').any(|part| part == *name))
}

fn glibc_of(release: &str) -> (u32, u32) {
    DEBIAN_GLIBC.iter().find(|(n, _)| *n == release).unwrap().1
}

/// `ENV K=V K2="V 2"` or `ENV K V`.
fn env_pairs(args: &str) -> Vec<(String, String)> {
    let unquote = |s: &str| s.trim().trim_matches('"').to_string();
    let first = args.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        return vec![(k.to_string(), unquote(v))];
    }
    args.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), unquote(v)))
        .collect()
}

/// Every `KLAMM_*` variable BrokerConfig reads.
fn known_env() -> HashSet<String> {
    BrokerConfig::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

/// What the image runs, as far as the later checks need it.
#[derive(Debug)]
struct Image {
    /// klamm's arguments: ENTRYPOINT after the program, then CMD.
    args: Vec<String>,
    config: BrokerConfig,
    env: Vec<(String, String)>,
    advertise: String,
    healthcheck: Vec<String>,
    release: &'static str,
}

fn check_dockerfile(text: &str) -> Result<Image, String> {
    let stages = parse_dockerfile(text)?;
    let runtime = stages.last().unwrap();
    let mut problems: Vec<String> = Vec::new();
    let all = |kw: &str| {
        runtime
            .instrs
            .iter()
            .filter(|i| i.keyword == kw)
            .collect::<Vec<_>>()
    };
    let last = |kw: &str| all(kw).last().copied();

    // The binary and its flags, through klamm's real parser.
    let entrypoint = last("ENTRYPOINT").ok_or("runtime stage: no ENTRYPOINT")?;
    let entry = exec_form(&entrypoint.args).ok_or(format!(
        "line {}: ENTRYPOINT must be exec form [\"...\"] (shell form runs klamm under /bin/sh, \
         which neither forwards SIGTERM nor appends `docker run` arguments)",
        entrypoint.line
    ))?;
    let program = entry.first().ok_or("ENTRYPOINT is empty")?;
    if !program.ends_with("klamm") {
        problems.push(format!("ENTRYPOINT runs {program}, not klamm"));
    }
    let mut args: Vec<String> = entry[1..].to_vec();
    if let Some(cmd) = last("CMD") {
        match exec_form(&cmd.args) {
            Some(extra) => args.extend(extra),
            None => problems.push(format!("line {}: CMD must be exec form", cmd.line)),
        }
    }
    let config =
        BrokerConfig::try_parse_from(std::iter::once("klamm".to_string()).chain(args.clone()))
            .map_err(|e| format!("klamm rejects the image's flags {args:?}:\n{e}"))?;
    let listen = config.listen;
    if listen.to_string() != format!("0.0.0.0:{PORT}") {
        problems.push(format!(
            "klamm listens on {listen}: the image must listen on 0.0.0.0:{PORT} (reachable from \
             outside the container)"
        ));
    }
    if config.data_dir != Path::new(DATA_DIR) {
        problems.push(format!(
            "data dir is {}, not {DATA_DIR}",
            config.data_dir.display()
        ));
    }
    if config.ephemeral {
        problems.push("the image runs --ephemeral: its volume would never hold data".into());
    }
    if args.iter().any(|a| a.starts_with("--advertise")) {
        problems.push(
            "--advertise in ENTRYPOINT/CMD overrides KLAMM_ADVERTISE: leave it to the env".into(),
        );
    }
    let port = listen.port();

    // ENV: only variables klamm reads, and an advertised address clients can use.
    let env: Vec<(String, String)> = all("ENV").iter().flat_map(|i| env_pairs(&i.args)).collect();
    let known = known_env();
    for (k, _) in &env {
        if k.starts_with("KLAMM_") && !known.contains(k) {
            problems.push(format!("ENV {k}: klamm reads no such variable"));
        }
    }
    let advertise = env
        .iter()
        .rev()
        .find(|(k, _)| k == "KLAMM_ADVERTISE")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    match advertise.rsplit_once(':') {
        Some((host, p)) if !host.is_empty() && host != "0.0.0.0" && p == port.to_string() => {}
        _ => problems.push(format!(
            "ENV KLAMM_ADVERTISE={advertise:?}: need a default HOST:{port} that clients can \
             connect to (the listen address 0.0.0.0 is not one)"
        )),
    }

    // A non-root user that owns the data dir, which is a volume.
    match last("USER") {
        None => problems.push("runtime stage: no USER (it would run as root)".into()),
        Some(u) => {
            let user = u.args.split(':').next().unwrap_or("").trim();
            if user.is_empty() || user == "root" || user == "0" {
                problems.push(format!("line {}: USER {} is root", u.line, u.args));
            }
        }
    }
    let owner_line = runtime
        .instrs
        .iter()
        .find(|i| {
            i.keyword == "RUN"
                && i.args.contains(DATA_DIR)
                && (i.args.contains("chown") || i.args.contains("install -d -o"))
        })
        .map(|i| i.line);
    match (owner_line, last("VOLUME")) {
        (_, None) => problems.push("runtime stage: no VOLUME".into()),
        (owner, Some(v)) => {
            let paths = exec_form(&v.args)
                .unwrap_or_else(|| v.args.split_whitespace().map(String::from).collect());
            if !paths.iter().any(|p| Path::new(p) == config.data_dir) {
                problems.push(format!(
                    "VOLUME {paths:?} does not hold the data dir {}",
                    config.data_dir.display()
                ));
            }
            match owner {
                None => problems.push(format!(
                    "no RUN gives {DATA_DIR} to the non-root user (chown or install -d -o)"
                )),
                Some(line) if line > v.line => problems.push(format!(
                    "line {line}: the data dir is chowned after VOLUME (line {}), which discards it",
                    v.line
                )),
                Some(_) => {}
            }
        }
    }

    let exposed: Vec<String> = all("EXPOSE")
        .iter()
        .flat_map(|i| i.args.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").to_string())
        .collect();
    if !exposed.contains(&port.to_string()) {
        problems.push(format!(
            "EXPOSE {exposed:?} does not include the listen port {port}"
        ));
    }

    let mut healthcheck = Vec::new();
    match last("HEALTHCHECK") {
        None => problems.push("runtime stage: no HEALTHCHECK".into()),
        Some(h) => {
            let mut rest = h.args.as_str();
            while rest.starts_with("--") {
                rest = rest
                    .split_once(char::is_whitespace)
                    .map_or("", |(_, r)| r)
                    .trim_start();
            }
            match rest.strip_prefix("CMD") {
                None => problems.push(format!("line {}: HEALTHCHECK {}: no CMD", h.line, h.args)),
                Some(cmd) => {
                    let cmd = cmd.trim();
                    healthcheck = exec_form(cmd)
                        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), cmd.into()]);
                    // With the admin HTTP port on, the check must ask /ready there; without
                    // it, the Kafka port must at least accept connections.
                    match config.http {
                        Some(http) => {
                            let target = format!("/dev/tcp/127.0.0.1/{}", http.port());
                            if !cmd.contains(&target) || !cmd.contains("GET /ready") {
                                problems.push(format!(
                                    "HEALTHCHECK {cmd} does not ask /ready on the HTTP port {}",
                                    http.port()
                                ));
                            }
                        }
                        None if !cmd.contains(&port.to_string()) => {
                            problems.push(format!("HEALTHCHECK {cmd} does not probe port {port}"));
                        }
                        None => {}
                    }
                }
            }
        }
    }

    // The build stage: same Debian release as the runtime, bindgen's libclang, cache mounts.
    let release = debian_release(&runtime.base);
    if !runtime.base.starts_with("debian:") || !runtime.base.ends_with("-slim") {
        problems.push(format!(
            "runtime base {} is not a debian:<release>-slim image",
            runtime.base
        ));
    }
    if release.is_none() {
        problems.push(format!(
            "runtime base {}: no Debian release this test knows (add its glibc to DEBIAN_GLIBC)",
            runtime.base
        ));
    }
    let copy_from = all("COPY")
        .iter()
        .find_map(|c| {
            c.args
                .split_whitespace()
                .find_map(|w| w.strip_prefix("--from="))
        })
        .map(String::from);
    let build = stages[..stages.len() - 1]
        .iter()
        .find(|s| copy_from.is_some() && s.name == copy_from);
    match build {
        None => problems.push(format!(
            "the runtime stage copies from {copy_from:?}, which names no earlier stage"
        )),
        Some(build) => {
            if debian_release(&build.base) != release {
                problems.push(format!(
                    "build base {} and runtime base {} are different Debian releases: the binary \
                     would link against another glibc than the one it runs on",
                    build.base, runtime.base
                ));
            }
            let runs: Vec<&Instr> = build.instrs.iter().filter(|i| i.keyword == "RUN").collect();
            if !runs
                .iter()
                .any(|r| r.args.contains("libclang-dev") && r.args.contains("clang "))
            {
                problems.push(
                    "build stage: apt-get install clang libclang-dev (bindgen) is missing".into(),
                );
            }
            match runs.iter().find(|r| r.args.contains("cargo build")) {
                None => problems.push("build stage: no cargo build".into()),
                Some(r) => {
                    if !r.args.contains("--release") || !r.args.contains("--locked") {
                        problems.push("cargo build needs --release --locked".into());
                    }
                    let caches: Vec<&str> = r
                        .args
                        .split_whitespace()
                        .filter_map(|w| w.strip_prefix("--mount=type=cache"))
                        .collect();
                    let mount_target = |opts: &str| {
                        opts.split(',')
                            .find_map(|o| o.strip_prefix("target=").or(o.strip_prefix("dst=")))
                            .unwrap_or("")
                            .trim_end_matches('/')
                            .to_string()
                    };
                    for dir in ["/usr/local/cargo/registry", "/target"] {
                        if !caches.iter().any(|o| mount_target(o).ends_with(dir)) {
                            problems.push(format!(
                                "cargo build has no --mount=type=cache for {dir}: every rebuild \
                                 would start from scratch"
                            ));
                        }
                    }
                    for opts in caches
                        .iter()
                        .filter(|o| mount_target(o).ends_with("/target"))
                    {
                        let id = opts.split(',').find_map(|o| o.strip_prefix("id="));
                        if !id.is_some_and(|id| release.is_some_and(|r| id.contains(r))) {
                            problems.push(format!(
                                "target cache mount{opts}: its id must name the Debian release, or \
                                 objects built for another glibc are reused"
                            ));
                        }
                    }
                }
            }
        }
    }

    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    Ok(Image {
        args,
        config,
        env,
        advertise,
        healthcheck,
        release: release.unwrap(),
    })
}

// ---------------------------------------------------------------------------------------
// compose.yaml, read with indentation and string checks only

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The lines nested under the first `key:` line at exactly `at` spaces of indentation.
fn block<'a>(lines: &[&'a str], key: &str, at: usize) -> Option<Vec<&'a str>> {
    let start = lines.iter().position(|l| {
        indent(l) == at
            && l.trim_start()
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
                .is_some_and(|r| r.trim().is_empty() || r.trim().starts_with('#'))
    })?;
    Some(
        lines[start + 1..]
            .iter()
            .take_while(|l| indent(l) > at)
            .copied()
            .collect(),
    )
}

/// The direct children of a block: (key, lines under it).
fn children<'a>(lines: &[&'a str]) -> Vec<(String, Vec<&'a str>)> {
    let Some(at) = lines.first().map(|l| indent(l)) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for l in lines {
        if indent(l) == at {
            let key = l.trim().trim_end_matches(':').trim_start_matches("- ");
            out.push((key.trim_matches('"').to_string(), Vec::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push(l);
        }
    }
    out
}

/// `key: value` on a line of the block (any depth), unquoted.
fn value(lines: &[&str], key: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        let rest = l.trim().strip_prefix(key)?.strip_prefix(':')?;
        Some(rest.trim().trim_matches('"').trim_matches('\'').to_string())
    })
}

/// List items (`- x`) of a block, unquoted.
fn items(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string())
        .collect()
}

#[derive(Debug)]
struct Compose {
    /// The kcat service's shell script, with compose's `$$` turned back into `$`.
    smoke: String,
    /// host:port the smoke script bootstraps from (the broker's advertised address).
    bootstrap: String,
}

fn check_compose(text: &str, image: &Image, docker_dir: &Path) -> Result<Compose, String> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let services = children(&block(&lines, "services", 0).ok_or("no top-level services:")?);
    let declared_volumes: Vec<String> = block(&lines, "volumes", 0)
        .map(|b| children(&b).into_iter().map(|(k, _)| k).collect())
        .unwrap_or_default();
    let port = image.config.listen.port().to_string();
    let mut problems = Vec::new();

    // The broker: the service built from docker/Dockerfile.
    let dockerfile = docker_dir.join("Dockerfile").canonicalize().unwrap();
    let broker = services.iter().find(|(_, body)| {
        let Some(build) = block(body, "build", indent(body[0])) else {
            return false;
        };
        let context = value(&build, "context").unwrap_or_else(|| ".".into());
        let file = value(&build, "dockerfile").unwrap_or_else(|| "Dockerfile".into());
        docker_dir.join(context).join(file).canonicalize().ok() == Some(dockerfile.clone())
    });
    let Some((broker, body)) = broker else {
        return Err(
            "no service is built from docker/Dockerfile (build: context/dockerfile)".into(),
        );
    };
    let at = indent(body[0]);

    let env = block(body, "environment", at).unwrap_or_default();
    let advertise = env.iter().find_map(|l| {
        let l = l.trim().trim_start_matches("- ");
        let rest = l.strip_prefix("KLAMM_ADVERTISE")?;
        let v = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':'))?;
        Some(v.trim().trim_matches('"').to_string())
    });
    for l in &env {
        let name: String = l
            .trim()
            .trim_start_matches("- ")
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.starts_with("KLAMM_") && !known_env().contains(&name) {
            problems.push(format!(
                "{broker}: environment {name}: klamm reads no such variable"
            ));
        }
    }
    let expected = format!("{broker}:{port}");
    if advertise.as_deref() != Some(expected.as_str()) {
        problems.push(format!(
            "{broker}: KLAMM_ADVERTISE is {advertise:?}; containers of the project reach the broker \
             as {expected}, so Metadata must advertise that"
        ));
    }

    let volumes = items(&block(body, "volumes", at).unwrap_or_default());
    let data_dir = image.config.data_dir.to_string_lossy().into_owned();
    match volumes
        .iter()
        .find(|v| v.split(':').nth(1) == Some(data_dir.as_str()))
    {
        None => problems.push(format!("{broker}: no volume mounted at {data_dir}")),
        Some(v) => {
            let source = v.split(':').next().unwrap();
            let bind = source.starts_with('.') || source.starts_with('/');
            if !bind && !declared_volumes.iter().any(|d| d == source) {
                problems.push(format!(
                    "volume {source} is not declared under top-level volumes:"
                ));
            }
        }
    }
    let ports = items(&block(body, "ports", at).unwrap_or_default());
    if !ports
        .iter()
        .any(|p| p.rsplit(':').next() == Some(port.as_str()))
    {
        problems.push(format!(
            "{broker}: port {port} is not published ({ports:?})"
        ));
    }

    // The smoke test: a kcat service that waits for a healthy broker, produces, consumes.
    let kcat = services
        .iter()
        .find(|(name, body)| name != broker && body.iter().any(|l| l.contains("kcat")));
    let mut smoke = String::new();
    match kcat {
        None => problems.push("no kcat service".into()),
        Some((name, body)) => {
            let at = indent(body[0]);
            let image = value(body, "image").unwrap_or_default();
            let installs = body.iter().any(|l| {
                l.contains("kcat") && (l.contains("apt-get install") || l.contains("apk add"))
            });
            if !image.contains("kcat") && !installs {
                problems.push(format!(
                    "{name}: image {image:?} does not ship kcat and nothing installs it \
                     (edenhill/kcat, or apt-get install kcat)"
                ));
            }
            let deps = block(body, "depends_on", at).unwrap_or_default();
            let dep = children(&deps).into_iter().find(|(k, _)| k == broker);
            match dep {
                None => problems.push(format!("{name}: does not depend_on {broker}")),
                Some((_, cond)) => {
                    if value(&cond, "condition").as_deref() != Some("service_healthy") {
                        problems.push(format!(
                            "{name}: depends_on {broker} needs condition: service_healthy (else it \
                             starts before the broker listens)"
                        ));
                    }
                }
            }
            let command = block(body, "command", at).unwrap_or_default();
            smoke = match command.first().map(|l| l.trim()) {
                Some("- |") | Some("- |-") => {
                    let inner = indent(command[0]);
                    let script: Vec<&str> = command[1..]
                        .iter()
                        .take_while(|l| indent(l) > inner)
                        .copied()
                        .collect();
                    let cut = script.iter().map(|l| indent(l)).min().unwrap_or(0);
                    script
                        .iter()
                        .map(|l| &l[cut..])
                        .collect::<Vec<_>>()
                        .join("\n")
                }
                _ => value(body, "command").unwrap_or_default(),
            }
            .replace("$$", "$");
            let bootstrap = format!("-b {expected}");
            let produce = smoke
                .lines()
                .any(|l| l.contains(&bootstrap) && l.contains(" -P"));
            let consume = smoke
                .lines()
                .any(|l| l.contains(&bootstrap) && l.contains(" -C"));
            if !produce || !consume {
                problems.push(format!(
                    "{name}: the command must produce (kcat {bootstrap} -P) and consume (kcat \
                     {bootstrap} -C); it is:\n{smoke}"
                ));
            }
        }
    }

    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    Ok(Compose {
        smoke,
        bootstrap: expected,
    })
}

// ---------------------------------------------------------------------------------------
// glibc

/// The highest `GLIBC_x.y` symbol version in `objdump -T` output.
fn max_glibc(objdump: &str) -> Option<(u32, u32)> {
    objdump
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .max()
}

fn check_glibc(objdump: &str, release: &str) -> Result<(u32, u32), String> {
    let need = max_glibc(objdump).ok_or("no GLIBC_ symbol versions in objdump -T output")?;
    let have = glibc_of(release);
    if need > have {
        return Err(format!(
            "the binary needs glibc {}.{}, but {release} has {}.{}",
            need.0, need.1, have.0, have.1
        ));
    }
    Ok(need)
}

// ---------------------------------------------------------------------------------------
// tests

#[test]
fn dockerfile_runtime_stage() {
    let image =
        check_dockerfile(&read("Dockerfile")).unwrap_or_else(|e| panic!("docker/Dockerfile:\n{e}"));
    println!(
        "runtime on {} runs klamm {:?}, listen {}, data {}, advertise {}, healthcheck {:?}",
        image.release,
        image.args,
        image.config.listen,
        image.config.data_dir.display(),
        image.advertise,
        image.healthcheck
    );
}

#[test]
fn compose_file() {
    let image = check_dockerfile(&read("Dockerfile")).unwrap();
    let compose = check_compose(&read("compose.yaml"), &image, &docker_dir())
        .unwrap_or_else(|e| panic!("docker/compose.yaml:\n{e}"));
    println!(
        "smoke script (bootstrap {}):\n{}",
        compose.bootstrap, compose.smoke
    );
}

#[test]
fn binary_glibc_fits_runtime_base() {
    let image = check_dockerfile(&read("Dockerfile")).unwrap();
    let out = match Command::new("objdump")
        .arg("-T")
        .arg(env!("CARGO_BIN_EXE_klamm"))
        .output()
    {
        Ok(out) => out,
        // test.sh installs binutils; a check that cannot run must not pass.
        Err(e) => panic!("objdump not runnable ({e}): apt-get install binutils"),
    };
    assert!(
        out.status.success(),
        "objdump -T failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let need = check_glibc(&String::from_utf8_lossy(&out.stdout), image.release)
        .unwrap_or_else(|e| panic!("{e} (docker/Dockerfile runtime base)"));
    let have = glibc_of(image.release);
    println!(
        "klamm needs glibc {}.{}; {} has {}.{}",
        need.0, need.1, image.release, have.0, have.1
    );
}

/// Runs a command with a deadline; None when the program does not exist.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Option<(ExitStatus, String)> {
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{cmd:?}: {e}"),
    };
    let mut pipes = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipes.0.read_to_string(&mut s);
        let _ = pipes.1.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status, reader.join().unwrap()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The image's command line and environment on a free loopback port and a temp data dir,
/// probed with the image's HEALTHCHECK (up: passes; killed: fails) and, when kcat is
/// installed, the compose smoke script.
#[test]
fn healthcheck_and_smoke_script_against_the_binary() {
    let image = check_dockerfile(&read("Dockerfile")).unwrap();
    let compose = check_compose(&read("compose.yaml"), &image, &docker_dir()).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();

    let http_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let image_http_port = image.config.http.map(|h| h.port());
    let mut args = image.args.clone();
    for i in 0..args.len().saturating_sub(1) {
        match args[i].as_str() {
            "--listen" => args[i + 1] = addr.clone(),
            "--data-dir" => args[i + 1] = dir.path().to_string_lossy().into_owned(),
            "--http" => args[i + 1] = format!("127.0.0.1:{http_port}"),
            _ => {}
        }
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_klamm"));
    cmd.args(&args);
    for name in known_env() {
        cmd.env_remove(name);
    }
    for (k, v) in &image.env {
        cmd.env(k, if k == "KLAMM_ADVERTISE" { &addr } else { v });
    }
    let mut broker = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("klamm starts");
    let stderr = broker.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("klamm ready on") {
                let _ = tx.send(());
            }
            all.push(line);
        }
        all
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = broker.kill();
        panic!("no ready line within 20 s: {:?}", log.join().unwrap());
    }

    let probe = |what: &str| {
        let argv: Vec<String> = image
            .healthcheck
            .iter()
            .map(|a| match image_http_port {
                Some(h) => a.replace(&format!("/{h}"), &format!("/{http_port}")),
                None => a.replace(&PORT.to_string(), &port.to_string()),
            })
            .collect();
        let result = run_bounded(
            Command::new(&argv[0]).args(&argv[1..]),
            Duration::from_secs(10),
        );
        // The probe is the image's own command (bash); it must run here.
        assert!(
            result.is_some(),
            "{} not runnable: healthcheck probe ({what}) cannot run",
            argv[0]
        );
        result
    };
    let up = probe("broker up");
    let smoke = match run_bounded(Command::new("kcat").arg("-V"), Duration::from_secs(10)) {
        // test.sh installs kcat; the smoke script is the compose file's own.
        None => panic!("kcat not installed: apt-get install kcat"),
        Some(_) => {
            let script = compose.smoke.replace(&compose.bootstrap, &addr);
            run_bounded(
                Command::new("sh").arg("-euc").arg(&script),
                Duration::from_secs(60),
            )
        }
    };
    let _ = broker.kill();
    let _ = broker.wait();
    let log = log.join().unwrap();
    let down = probe("broker killed");

    if let Some((status, out)) = up {
        assert!(
            status.success(),
            "healthcheck failed against a running broker: {out}"
        );
    }
    if let Some((status, out)) = down {
        assert!(
            !status.success(),
            "healthcheck passed with no broker: {out}"
        );
    }
    if let Some((status, out)) = smoke {
        assert!(
            status.success(),
            "compose smoke script failed:\n{out}\nbroker log:\n{}",
            log.join("\n")
        );
        println!("smoke script output:\n{out}");
    }
    let warnings: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(
        warnings.is_empty(),
        "the probes made the broker log warnings: {warnings:?}"
    );
}

/// Replaces the whole instruction starting with `keyword` (with its continuation lines).
fn replace_instruction(text: &str, keyword: &str, with: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(keyword))
        .unwrap_or_else(|| panic!("no {keyword} in the Dockerfile"));
    let mut end = start;
    while lines[end].trim_end().ends_with('\\') {
        end += 1;
    }
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.push(with);
    out.extend(&lines[end + 1..]);
    out.join("\n")
}

/// Broken variants of docker/Dockerfile: (what, text in the real file, replacement).
const BROKEN_DOCKERFILES: &[(&str, &str, &str)] = &[
    ("root user", "USER 10001:10001", "USER root"),
    ("uid 0", "USER 10001:10001", "USER 0:0"),
    ("other port exposed", "EXPOSE 9092", "EXPOSE 8080"),
    ("volume elsewhere", "VOLUME /var/lib/klamm", "VOLUME /data"),
    (
        "probe elsewhere",
        "/dev/tcp/127.0.0.1/9644",
        "/dev/tcp/127.0.0.1/80",
    ),
    ("probe not /ready", "GET /ready", "GET /health"),
    (
        "loopback listener",
        "\"0.0.0.0:9092\"",
        "\"127.0.0.1:9092\"",
    ),
    ("bad flag value", "\"0.0.0.0:9092\"", "\"0.0.0.0:http\""),
    ("unknown flag", "\"--data-dir\"", "\"--data-directory\""),
    (
        "other data dir",
        "\"/var/lib/klamm\", \"--http\"",
        "\"/data\", \"--http\"",
    ),
    (
        "--ephemeral",
        "\"0.0.0.0:9644\"]",
        "\"0.0.0.0:9644\", \"--ephemeral\"]",
    ),
    (
        "--advertise flag",
        "\"0.0.0.0:9644\"]",
        "\"0.0.0.0:9644\", \"--advertise\", \"x:9092\"]",
    ),
    (
        "misspelt env",
        "ENV KLAMM_ADVERTISE=",
        "ENV KLAMM_ADVERTIZE=",
    ),
    (
        "advertised port",
        "KLAMM_ADVERTISE=localhost:9092",
        "KLAMM_ADVERTISE=localhost:1",
    ),
    (
        "advertises 0.0.0.0",
        "KLAMM_ADVERTISE=localhost:9092",
        "KLAMM_ADVERTISE=0.0.0.0:9092",
    ),
    (
        "data dir not chowned",
        "install -d -o klamm -g klamm -m 0750 /var/lib/klamm",
        "true",
    ),
    (
        "runtime release",
        "FROM debian:bookworm-slim",
        "FROM debian:trixie-slim",
    ),
    (
        "build release",
        "FROM rust:1-bookworm",
        "FROM rust:1-trixie",
    ),
    (
        "unknown runtime base",
        "FROM debian:bookworm-slim",
        "FROM gcr.io/distroless/cc",
    ),
    ("no libclang", "clang libclang-dev", "pkg-config"),
    (
        "no cache mount",
        "--mount=type=cache,id=klamm-target",
        "--mount=type=tmpfs,id=klamm-target",
    ),
    (
        "target cache id",
        "id=klamm-target-bookworm",
        "id=klamm-target",
    ),
    ("not --locked", "--release --locked", "--release"),
];

/// Broken variants of docker/compose.yaml.
const BROKEN_COMPOSES: &[(&str, &str, &str)] = &[
    (
        "advertises localhost",
        "KLAMM_ADVERTISE: klamm:9092",
        "KLAMM_ADVERTISE: localhost:9092",
    ),
    (
        "no advertise",
        "KLAMM_ADVERTISE: klamm:9092",
        "KLAMM_LOG_LEVEL: info",
    ),
    (
        "unknown env",
        "      KLAMM_ADVERTISE:",
        "      KLAMM_ADVERTIZED: x\n      KLAMM_ADVERTISE:",
    ),
    (
        "wrong dockerfile",
        "dockerfile: docker/Dockerfile",
        "dockerfile: Dockerfile",
    ),
    (
        "volume elsewhere",
        "- klamm-data:/var/lib/klamm",
        "- klamm-data:/data",
    ),
    ("volume not declared", "volumes:\n  klamm-data:\n", ""),
    ("port not published", "- \"9092:9092\"", "- \"9092:9093\""),
    ("no health condition", "service_healthy", "service_started"),
    (
        "no depends_on",
        "depends_on:\n      klamm:",
        "depends_on:\n      other:",
    ),
    (
        "no consume",
        "kcat -b klamm:9092 -C",
        "kcat -b klamm:9092 -L",
    ),
    (
        "no kcat service",
        "image: edenhill/kcat:1.7.1",
        "image: busybox",
    ),
];

/// Every check above can fail: each broken variant of the real files must be rejected.
#[test]
fn checks_catch_broken_files() {
    let swap = |text: &str, (what, from, to): (&str, &str, &str)| {
        assert!(
            text.contains(from),
            "{what}: {from:?} is gone from the file: update this test"
        );
        text.replacen(from, to, 1)
    };
    let dockerfile = read("Dockerfile");
    let mut broken: Vec<(&str, String)> = BROKEN_DOCKERFILES
        .iter()
        .map(|&m| (m.0, swap(&dockerfile, m)))
        .collect();
    for keyword in ["USER", "VOLUME", "EXPOSE", "HEALTHCHECK", "ENV"] {
        broken.push((keyword, replace_instruction(&dockerfile, keyword, "")));
    }
    let entry = "ENTRYPOINT /usr/local/bin/klamm --listen 0.0.0.0:9092 --data-dir /var/lib/klamm";
    broken.extend([
        (
            "HEALTHCHECK NONE",
            replace_instruction(&dockerfile, "HEALTHCHECK", "HEALTHCHECK NONE"),
        ),
        (
            "shell-form ENTRYPOINT",
            replace_instruction(&dockerfile, "ENTRYPOINT", entry),
        ),
        (
            "VOLUME before the chown",
            replace_instruction(&dockerfile, "VOLUME", "").replace(
                "FROM debian:bookworm-slim AS runtime",
                "FROM debian:bookworm-slim AS runtime\nVOLUME /var/lib/klamm",
            ),
        ),
    ]);
    for (what, text) in &broken {
        match check_dockerfile(text) {
            Ok(_) => panic!("the Dockerfile check accepted a broken file: {what}"),
            Err(e) => println!("Dockerfile {what}: {}", e.lines().next().unwrap_or("")),
        }
    }

    let image = check_dockerfile(&dockerfile).unwrap();
    let compose = read("compose.yaml");
    for &m in BROKEN_COMPOSES {
        match check_compose(&swap(&compose, m), &image, &docker_dir()) {
            Ok(_) => panic!("the compose check accepted a broken file: {}", m.0),
            Err(e) => println!("compose {}: {}", m.0, e.lines().next().unwrap_or("")),
        }
    }

    let objdump = "0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.38) __isoc23_strtol\n\
                   0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.2.5) free\n";
    assert_eq!(max_glibc(objdump), Some((2, 38)));
    assert!(
        check_glibc(objdump, "bookworm").is_err(),
        "2.38 accepted on bookworm"
    );
    assert!(check_glibc(objdump, "trixie").is_ok());
    assert!(check_glibc("GLIBCXX_3.4.30 GLIBC_PRIVATE", "bookworm").is_err());
}

/// The flags a compose service's `KLAMM_*` environment amounts to, parsed by klamm's own
/// parser after the image's ENTRYPOINT, as the container would start.
fn config_of_service(image: &Image, env: &[&str]) -> Result<BrokerConfig, String> {
    let command = BrokerConfig::command();
    let mut args = vec!["klamm".to_string()];
    args.extend(image.args.iter().cloned());
    for l in env {
        let Some((name, v)) = l.trim().split_once(':') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        let arg = command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == name.trim()))
            .ok_or_else(|| format!("environment {name}: klamm reads no such variable"))?;
        args.push(format!("--{}", arg.get_long().unwrap()));
        args.push(v);
    }
    BrokerConfig::try_parse_from(&args).map_err(|e| format!("{args:?}: {e}"))
}

/// docker/compose.cluster.yaml: ZooKeeper and three brokers that would form one cluster
/// (distinct node ids and volumes, each advertising its service name, all on the ZooKeeper
/// service), and a smoke service that waits for all three.
#[test]
fn compose_cluster_file() {
    let image = check_dockerfile(&read("Dockerfile")).unwrap();
    let text = read("compose.cluster.yaml");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let services = children(&block(&lines, "services", 0).expect("services:"));
    let declared: Vec<String> = children(&block(&lines, "volumes", 0).unwrap_or_default())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let zk = services
        .iter()
        .find(|(_, body)| value(body, "image").is_some_and(|i| i.starts_with("zookeeper:")))
        .map(|(name, _)| name.clone())
        .expect("a zookeeper service");
    let mut ids = HashSet::new();
    let mut data_volumes = HashSet::new();
    let mut brokers = Vec::new();
    for (name, body) in &services {
        if value(body, "image").as_deref() != Some("klamm:latest") {
            continue;
        }
        let at = indent(body[0]);
        let env = block(body, "environment", at).unwrap_or_default();
        let config = config_of_service(&image, &env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            ids.insert(config.node_id),
            "{name}: node id {} twice",
            config.node_id
        );
        assert_eq!(
            config.advertise.as_deref(),
            Some(format!("{name}:{PORT}").as_str()),
            "{name} must advertise its service name"
        );
        let connect = config.zookeeper_connect.clone().expect("zookeeper connect");
        assert!(
            connect.starts_with(&format!("{zk}:2181/")),
            "{name}: {connect} is not the {zk} service with a chroot"
        );
        let volumes = items(&block(body, "volumes", at).unwrap_or_default());
        let data = volumes
            .iter()
            .find(|v| v.ends_with(&format!(":{DATA_DIR}")))
            .unwrap_or_else(|| panic!("{name}: no volume at {DATA_DIR}"));
        let source = data.split(':').next().unwrap().to_string();
        assert!(
            declared.contains(&source),
            "{name}: volume {source} not declared"
        );
        assert!(data_volumes.insert(source), "{name}: shares a data volume");
        brokers.push(name.clone());
    }
    assert_eq!(brokers.len(), 3, "three brokers: {brokers:?}");
    let smoke = services
        .iter()
        .find(|(name, _)| name == "kcat-smoke")
        .expect("kcat-smoke");
    let depends = children(&block(&smoke.1, "depends_on", indent(smoke.1[0])).unwrap());
    for b in &brokers {
        let (_, cond) = depends
            .iter()
            .find(|(n, _)| n == b)
            .unwrap_or_else(|| panic!("kcat-smoke does not wait for {b}"));
        assert_eq!(value(cond, "condition").as_deref(), Some("service_healthy"));
    }
}
