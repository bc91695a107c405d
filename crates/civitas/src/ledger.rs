//! `civitas ledger …`: append to and read a node's ledger, fetch its signed checkpoint,
//! public key and inclusion proofs, and verify them OFFLINE with nothing but the public key
//! (`civitas ledger verify` never talks to a node).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use civitas_ledger::{
    Entry, EntryKind, InclusionProof, NoteVerifier, SignedCheckpoint, verify_checkpoint, verify_entry,
};
use serde_json::Value;

/// Examples shown by `civitas ledger --help`.
pub const EXAMPLES: &str = "\
Examples:
  # Record a note, read it back, and get the node's signed checkpoint and key
  civitas ledger append --kind note --data '{\"text\": \"budget approved\"}'
  civitas ledger get 0 > entry.json
  civitas ledger checkpoint > checkpoint.txt
  civitas ledger pubkey

  # Prove entry 0 against that checkpoint, then verify offline
  civitas ledger prove 0 --checkpoint checkpoint.txt > proof.json
  civitas ledger verify --pubkey \"$(civitas ledger pubkey)\" --checkpoint checkpoint.txt \\
      --proof proof.json --entry entry.json

  # Also require the cosignature of a witness (its GET /api/v1/ledger/witness/pubkey)
  civitas ledger verify --pubkey ledger.pub --checkpoint checkpoint.txt --witness \"$(cat witness.pub)\"";

/// The verbs of `civitas ledger`.
#[derive(Debug, Clone, clap::Subcommand)]
#[command(after_help = EXAMPLES)]
pub enum LedgerCommand {
    /// Append an entry to the node's ledger; prints its index once it is on disk.
    #[command(after_help = "Examples:\n  civitas ledger append --kind note --data '{\"text\": \"hello\"}'\n  \
                            civitas ledger append --kind deal --data @deal.json\n  \
                            echo '{\"task\": 7}' | civitas ledger append --kind task --data -")]
    Append {
        /// What the entry records: deal, task, migration-decision, audit-anchor or note.
        #[arg(long, value_parser = parse_kind)]
        kind: EntryKind,
        /// The entry's data: a JSON object, `@FILE` to read it from a file, or `-` for stdin.
        #[arg(long, value_name = "JSON")]
        data: String,
    },
    /// Print entry INDEX exactly as the ledger hashes it (canonical JSON).
    #[command(after_help = "Examples:\n  civitas ledger get 0\n  civitas ledger get 41 > entry.json")]
    Get {
        /// The entry's index (0 is the first).
        index: u64,
    },
    /// Print the node's current signed checkpoint (a C2SP signed note).
    #[command(after_help = "Examples:\n  civitas ledger checkpoint > checkpoint.txt")]
    Checkpoint,
    /// Print the node's ledger verifier key (`<name>+<key ID>+<key>`).
    #[command(after_help = "Examples:\n  civitas ledger pubkey > ledger.pub")]
    Pubkey,
    /// Print the inclusion proof of entry INDEX (JSON), against the tree size of the
    /// checkpoint in FILE, or of the node's current checkpoint.
    #[command(after_help = "Examples:\n  civitas ledger prove 0 --checkpoint checkpoint.txt > proof.json\n  \
                            civitas ledger prove 12")]
    Prove {
        /// The entry's index.
        index: u64,
        /// A checkpoint saved earlier (`civitas ledger checkpoint > FILE`).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Verify a checkpoint, and optionally an entry's inclusion proof, OFFLINE with nothing
    /// but the log's public key. Exits non-zero on any mismatch.
    #[command(
        after_help = "Examples:\n  civitas ledger verify --pubkey \"$(cat ledger.pub)\" --checkpoint checkpoint.txt\n  \
                            civitas ledger verify --pubkey ledger.pub --checkpoint checkpoint.txt \\\n      \
                            --proof proof.json --entry entry.json\n  \
                            # and cosigned by both witnesses:\n  \
                            civitas ledger verify --pubkey ledger.pub --checkpoint checkpoint.txt \\\n      \
                            --witness witness-b.pub --witness witness-c.pub\n  \
                            # by at least 2 of 3 witnesses:\n  \
                            civitas ledger verify --pubkey ledger.pub --checkpoint checkpoint.txt --min-witnesses 2 \\\n      \
                            --witness witness-b.pub --witness witness-c.pub --witness witness-d.pub"
    )]
    Verify {
        /// The log's verifier key, or a file holding it.
        #[arg(long, value_name = "KEY")]
        pubkey: String,
        /// The signed checkpoint.
        #[arg(long, value_name = "FILE")]
        checkpoint: PathBuf,
        /// An inclusion proof (`civitas ledger prove`).
        #[arg(long, value_name = "FILE", requires = "entry")]
        proof: Option<PathBuf>,
        /// The entry the proof is for (`civitas ledger get`).
        #[arg(long, value_name = "FILE", requires = "proof")]
        entry: Option<PathBuf>,
        /// A witness's verifier key (type 0x04, as its `GET /api/v1/ledger/witness/pubkey`
        /// prints it), or a file holding it; repeatable. The checkpoint must then carry valid
        /// cosignatures by `--min-witnesses` of them.
        #[arg(long = "witness", value_name = "KEY")]
        witnesses: Vec<String>,
        /// How many of the `--witness` keys must have cosigned the checkpoint (default: all).
        #[arg(long, value_name = "N", requires = "witnesses")]
        min_witnesses: Option<usize>,
    },
}

fn parse_kind(s: &str) -> Result<EntryKind, String> {
    s.parse().map_err(|e: civitas_ledger::EntryError| e.to_string().trim_start_matches("/kind: ").to_string())
}

/// Runs a ledger verb against the node at `server`, printing to stdout.
pub async fn run(server: &str, cmd: LedgerCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    run_to(server, cmd, &mut out).await
}

/// Runs a ledger verb, printing to `out`.
pub async fn run_to(server: &str, cmd: LedgerCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    if let LedgerCommand::Verify { pubkey, checkpoint, proof, entry, witnesses, min_witnesses } = &cmd {
        // Offline: no node is contacted.
        let inclusion = proof.as_deref().zip(entry.as_deref());
        return verify(pubkey, checkpoint, inclusion, witnesses, *min_witnesses, out);
    }
    let node = Node::new(server)?;
    match cmd {
        LedgerCommand::Append { kind, data } => {
            let data = read_data(&data)?;
            let entry = Entry::new(kind, data).map_err(|e| anyhow!("--data: {e}"))?;
            let answer = node.post_json("entries", &entry.to_value()).await?;
            let index = answer.get("index").and_then(Value::as_u64).context("the node's answer has no index")?;
            writeln!(out, "{index}")?;
        }
        LedgerCommand::Get { index } => {
            let bytes = node.get(&format!("entries/{index}")).await?;
            out.write_all(&bytes)?;
            writeln!(out)?;
        }
        LedgerCommand::Checkpoint => out.write_all(&node.get("checkpoint").await?)?,
        LedgerCommand::Pubkey => out.write_all(&node.get("pubkey").await?)?,
        LedgerCommand::Prove { index, checkpoint } => {
            let text = match &checkpoint {
                Some(file) => read_text(file)?,
                None => String::from_utf8(node.get("checkpoint").await?).context("the checkpoint is not UTF-8")?,
            };
            let what = checkpoint.as_ref().map_or("the node's checkpoint".to_string(), |f| f.display().to_string());
            let size =
                SignedCheckpoint::parse_unverified(&text).with_context(|| format!("reading {what}"))?.checkpoint().size;
            if index >= size {
                bail!("entry {index} is not in {what}, which covers entries 0..{size}; fetch a newer checkpoint");
            }
            let bytes = node.get(&format!("proof/inclusion?index={index}&size={size}")).await?;
            let proof: InclusionProof =
                serde_json::from_slice(&bytes).context("the node's answer is not an inclusion proof")?;
            writeln!(out, "{}", serde_json::to_string_pretty(&proof)?)?;
        }
        LedgerCommand::Verify { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// Offline verification; every failure is an error (non-zero exit).
fn verify(
    pubkey: &str,
    checkpoint: &Path,
    inclusion: Option<(&Path, &Path)>,
    witnesses: &[String],
    min_witnesses: Option<usize>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let key = parse_pubkey(pubkey, "--pubkey")?;
    let witness_keys = witnesses.iter().map(|w| parse_pubkey(w, "--witness")).collect::<anyhow::Result<Vec<_>>>()?;
    for w in &witness_keys {
        if w.sig_type() != civitas_ledger::note::SIG_TYPE_COSIGNATURE_V1 {
            bail!(
                "--witness {w} is not a witness key (type 0x04); a node's witness key is what its \
                 GET /api/v1/ledger/witness/pubkey prints"
            );
        }
    }
    let required = min_witnesses.unwrap_or(witness_keys.len());
    if required > witness_keys.len() {
        bail!("--min-witnesses {required} is more than the {} --witness keys given", witness_keys.len());
    }
    let text = read_text(checkpoint)?;
    let verified =
        verify_checkpoint(&key, &text).with_context(|| format!("{} does not verify", checkpoint.display()))?;
    writeln!(
        out,
        "checkpoint OK: {} at size {}, root {} (signed by {}+{:08x})",
        verified.origin,
        verified.size,
        verified.root,
        key.name(),
        key.key_id()
    )?;
    if !witness_keys.is_empty() {
        let signed = SignedCheckpoint::parse_unverified(&text)
            .with_context(|| format!("{} does not verify", checkpoint.display()))?;
        let mut valid = 0;
        let mut problems = Vec::new();
        for w in &witness_keys {
            match signed.note().verify(w) {
                Ok(line) => {
                    valid += 1;
                    let time = line.cosignature_timestamp().map_or(String::new(), |t| format!(" at time {t}"));
                    writeln!(out, "cosignature OK: {}+{:08x}{time}", w.name(), w.key_id())?;
                }
                Err(e) => problems.push(format!("{}+{:08x}: {e}", w.name(), w.key_id())),
            }
        }
        if valid < required {
            bail!(
                "{} has {valid} valid cosignature(s) by the given witnesses, {required} required:\n  {}",
                checkpoint.display(),
                problems.join("\n  ")
            );
        }
        writeln!(
            out,
            "witnesses OK: {valid} of {} given witnesses cosigned ({required} required)",
            witness_keys.len()
        )?;
    }
    if let Some((proof_file, entry_file)) = inclusion {
        let proof: InclusionProof = serde_json::from_slice(&read_bytes(proof_file)?)
            .with_context(|| format!("{} is not an inclusion proof", proof_file.display()))?;
        let mut entry = read_bytes(entry_file)?;
        // `civitas ledger get > FILE` adds one newline after the canonical JSON.
        if entry.last() == Some(&b'\n') {
            entry.pop();
        }
        let result = verify_entry(&key, &text, &proof, &entry).with_context(|| {
            format!("entry {} ({}) is NOT proven by {}", proof.index, entry_file.display(), proof_file.display())
        })?;
        writeln!(
            out,
            "entry OK: {} is entry {} of {} (a {} entry), included in the tree of size {}",
            entry_file.display(),
            result.index,
            result.checkpoint.origin,
            result.entry.kind,
            result.checkpoint.size
        )?;
    }
    Ok(())
}

fn parse_pubkey(arg: &str, flag: &str) -> anyhow::Result<NoteVerifier> {
    match arg.parse::<NoteVerifier>() {
        Ok(key) => Ok(key),
        Err(as_key) => {
            let path = Path::new(arg);
            if path.is_file() {
                let text = read_text(path)?;
                text.trim().parse().with_context(|| format!("{} does not hold a verifier key", path.display()))
            } else {
                Err(anyhow!(as_key)).with_context(|| format!("{flag} is neither a verifier key nor a file holding one"))
            }
        }
    }
}

fn read_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    String::from_utf8(read_bytes(path)?).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// `--data`: JSON text, `@FILE`, or `-` for stdin.
fn read_data(arg: &str) -> anyhow::Result<Value> {
    let (text, source) = if arg == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading --data from stdin")?;
        (s, "stdin".to_string())
    } else if let Some(file) = arg.strip_prefix('@') {
        (read_text(Path::new(file))?, file.to_string())
    } else {
        (arg.to_string(), "--data".to_string())
    };
    let value: Value = serde_json::from_str(&text).with_context(|| format!("{source} is not JSON"))?;
    if !value.is_object() {
        bail!("{source} must be a JSON object, such as '{{\"text\": \"hello\"}}'");
    }
    Ok(value)
}

/// The ledger API of one node.
struct Node {
    server: String,
    base: String,
    http: reqwest::Client,
}

impl Node {
    fn new(server: &str) -> anyhow::Result<Node> {
        let url = reqwest::Url::parse(server).with_context(|| format!("--server {server:?} is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("--server {server:?} must be an http:// URL such as http://127.0.0.1:7070");
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("civitas-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Node { server: server.to_string(), base: format!("{}/api/v1/ledger/", server.trim_end_matches('/')), http })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body)?);
        let bytes = self.send(request).await?;
        serde_json::from_slice(&bytes).context("the node's answer is not JSON")
    }

    /// Sends a request; a non-2xx answer becomes an error that shows the node's problem
    /// document (`<title> (<status>): <detail>`).
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Vec<u8>> {
        let response = request.send().await.map_err(|e| {
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            if e.is_connect() || e.is_timeout() {
                anyhow!(
                    "cannot reach the Civitas node at {}: {cause} (is `civitas serve` running? set --server or CIVITAS_SERVER)",
                    self.server
                )
            } else {
                anyhow!("request to {} failed: {cause}", self.server)
            }
        })?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading the node's answer")?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let title =
            problem.get("title").and_then(Value::as_str).unwrap_or(status.canonical_reason().unwrap_or("error"));
        let detail = problem
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().chars().take(500).collect());
        Err(anyhow!("{title} ({}): {detail}", status.as_u16()))
    }
}
