//! The page a judge reads: `bundle show --html` (docs/bundle.md, "The page a judge reads"), and
//! who vouches for each record in `bundle verify --json` (`vouched_by`). Kept apart from
//! [`crate::bundle`], which the fuzz harnesses and the golden test compile on their own.

use crate::pages::{Tz, esc, kind_name, record_body};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ledger_core::bundle::{Bundle, BundleVerdict, RecordVerdict};
use ledger_core::entry::Entry;
use ledger_core::registry::Registry;
use std::fmt::Write as _;

/// One RFC 3161 token as the page and `vouched_by` see it (from `crate::timestamps`, which this
/// module does not depend on so that the fuzz harnesses can compile it alone).
#[derive(Debug, Clone, Default)]
pub struct TokenRow {
    /// The TSA (signer certificate subject).
    pub tsa: String,
    /// Size of the checkpoint the token covers.
    pub checkpoint_size: u64,
    /// genTime as written in the token.
    pub gen_time: String,
    /// genTime, Unix seconds (0 when unknown).
    pub gen_time_unix: u64,
    /// Verified against a supplied root.
    pub verified: bool,
    /// That root.
    pub root: String,
    /// Why it failed (empty when verified or unchecked).
    pub problem: String,
}

/// The timestamp tokens of a bundle, checked or not.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// Whether the caller supplied TSA roots (`--tsa-root`).
    pub roots_given: bool,
    /// One per token.
    pub rows: Vec<TokenRow>,
}

impl Tokens {
    fn ok(&self) -> bool {
        !self.roots_given || self.rows.iter().all(|t| t.verified)
    }
}

/// The registry as of the bundle's checkpoint (charter and key records below `size`), for naming
/// witness keys; `None` when the bundle has no readable charter.
fn registry_at(b: &Bundle, size: u64) -> Option<Registry> {
    let mut es: Vec<Entry> = b
        .registry
        .iter()
        .filter_map(|e| Entry::decode(&B64.decode(&e.leaf).ok()?).ok())
        .filter(|e| e.index < size)
        .collect();
    es.sort_by_key(|e| e.index);
    let mut r = Registry::genesis(es.first()?).ok()?;
    for e in es.iter().skip(1) {
        // A key record that fails is reported by the verdict; here it is only skipped.
        let _ = ledger_core::state::fold_registry(&mut r, e);
    }
    Some(r)
}

/// One witness key enrolled in the bundle's registry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WitnessKey {
    /// Holder's name (the cosignature key name).
    pub name: String,
    /// Key id in the registry.
    pub keyid: String,
    /// The key as a note verifier key (`name+hash+base64`), for `--witness-key`-style checks.
    pub vkey: String,
    /// Whether this key cosigned the bundle's checkpoint (validly).
    pub cosigned: bool,
    /// The cosignature's timestamp, Unix seconds (0 when it did not cosign).
    pub cosigned_at: u64,
}

/// The witness keys enrolled (active, role `witness`) as of the checkpoint, and which cosigned it.
pub fn witness_keys(b: &Bundle, v: &BundleVerdict) -> Vec<WitnessKey> {
    let Some(reg) = registry_at(b, v.checkpoint_size) else {
        return Vec::new();
    };
    reg.keys
        .iter()
        .filter(|(_, k)| k.ended.is_none() && k.roles.contains(&ledger_core::registry::Role::Witness))
        .map(|(id, k)| {
            let cos = v.witnesses.iter().find(|w| w.name == k.name);
            WitnessKey {
                name: k.name.clone(),
                keyid: id.clone(),
                vkey: ledger_core::cosignature::CosignatureVerifier::new(&k.name, k.key)
                    .map(|c| c.to_string_key())
                    .unwrap_or_default(),
                cosigned: cos.is_some(),
                cosigned_at: cos.map_or(0, |c| c.timestamp),
            }
        })
        .collect()
}

/// Who, independent of the operator, vouches for one record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Vouchers {
    /// Log index.
    pub index: u64,
    /// Enrolled witnesses whose valid cosignature is on a checkpoint covering the record.
    pub witnesses: Vec<VouchingWitness>,
    /// Time-stamping authorities whose verified token covers a checkpoint covering the record.
    pub tsas: Vec<VouchingTsa>,
}

/// A witness vouching for a record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VouchingWitness {
    /// Witness name (registry holder, cosignature key name).
    pub name: String,
    /// Registry key id.
    pub keyid: String,
    /// Size of the cosigned checkpoint.
    pub checkpoint_size: u64,
    /// Cosignature time (RFC 3339, UTC).
    pub cosigned_at: String,
}

/// A TSA vouching for a record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VouchingTsa {
    /// The TSA (signer certificate subject).
    pub name: String,
    /// Size of the time-stamped checkpoint.
    pub checkpoint_size: u64,
    /// genTime: the record existed before this time (RFC 3339, UTC).
    pub existed_before: String,
}

/// Per record of the verdict, the independent parties vouching for it: witnesses that cosigned
/// the bundle's checkpoint (only for records that verify, i.e. are proven included in it) and TSAs
/// whose verified token covers a checkpoint that covers it.
pub fn vouchers(b: &Bundle, v: &BundleVerdict, ts: &Tokens) -> Vec<Vouchers> {
    let wk = witness_keys(b, v);
    v.records
        .iter()
        .map(|r| {
            let included = r.problems.is_empty() && r.index < v.checkpoint_size;
            let witnesses = if included {
                wk.iter()
                    .filter(|w| w.cosigned)
                    .map(|w| VouchingWitness {
                        name: w.name.clone(),
                        keyid: w.keyid.clone(),
                        checkpoint_size: v.checkpoint_size,
                        cosigned_at: ledger_core::time::rfc3339_micros(w.cosigned_at.saturating_mul(1_000_000)),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let mut tsas: Vec<VouchingTsa> = if included {
                ts.rows
                    .iter()
                    .filter(|t| t.verified && t.checkpoint_size > r.index)
                    .map(|t| VouchingTsa {
                        name: t.tsa.clone(),
                        checkpoint_size: t.checkpoint_size,
                        existed_before: ledger_core::time::rfc3339_micros(t.gen_time_unix.saturating_mul(1_000_000)),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            tsas.sort_by(|a, b| a.existed_before.cmp(&b.existed_before));
            Vouchers {
                index: r.index,
                witnesses,
                tsas,
            }
        })
        .collect()
}

/// One self-contained HTML page (no external assets) with the verdict, for printing on A4: each
/// record as labelled fields in Chinese and English, times in `tz` with UTC beside, the witnesses
/// and time-stamping authorities that vouch for the checkpoint, and how to verify it all
/// independently. `file` is the bundle's file name as the commands should show it.
pub fn html(b: &Bundle, v: &BundleVerdict, ts: &Tokens, tz: &Tz, file: &str) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=zh><head><meta charset=utf-8><title>证据包核验 Court bundle verdict</title><style>{}</style></head><body>\
<h1>证据包核验报告 <small>Court bundle verdict</small></h1>",
        crate::pages::CSS
    );
    if v.ok() && ts.ok() {
        o.push_str("<p class=\"verdict ok\">结论：以下记录均包含在已签名的账本中，未被篡改，签名者在当时具有授权。<br><small>Verdict: every record below is included, unaltered, in the signed log and was signed by keys authorized at the time.</small></p>");
    } else {
        o.push_str("<p class=\"verdict bad\">结论：证据包未通过验证，见下列问题。<br><small>Verdict: the bundle does NOT verify; see the problems below.</small></p>");
    }
    let _ = write!(
        o,
        "<h2>账本与检查点 <small>Ledger and checkpoint</small></h2><table>\
<tr><th>账本 <small>Ledger (origin)</small></th><td>{}</td></tr>\
<tr><th>检查点 <small>Checkpoint</small></th><td>{} 条记录 <small>entries</small></td></tr>\
<tr><th>根哈希 <small>Root hash</small></th><td><code>{}</code></td></tr>\
<tr><th>节点公钥 <small>Node key</small></th><td><code>{}</code></td></tr>\
<tr><th>信任依据 <small>Trust in the node key</small></th><td>{}</td></tr>\
<tr><th>时区 <small>Time zone</small></th><td>{}（UTC 并列 <small>UTC shown beside</small>）</td></tr></table>",
        esc(&v.origin),
        v.checkpoint_size,
        v.checkpoint_root,
        esc(&b.node_key),
        esc(&v.trust),
        esc(&tz.label)
    );
    let wk = witness_keys(b, v);
    witnesses_section(&mut o, v, &wk, tz);
    timestamps_section(&mut o, ts, tz);
    let _ = write!(o, "<h2>记录 <small>Records</small> ({})</h2>", v.records.len());
    for r in &v.records {
        record_section(&mut o, r, tz);
    }
    closing_sections(&mut o, v);
    o.push_str(&verify_section(b, v, &wk, file));
    o.push_str("</body></html>\n");
    o
}

/// The witness quorum and the enrolled witnesses, with when each cosigned.
fn witnesses_section(o: &mut String, v: &BundleVerdict, wk: &[WitnessKey], tz: &Tz) {
    let _ = write!(
        o,
        "<h2>独立见证 <small>Independent witnesses</small></h2><p>章程要求 {q} 个见证副署；本检查点有 {n} 个有效副署（来自登记册中登记的见证密钥）。<br>\
<small>The charter asks for {q} witness cosignature(s); this checkpoint carries {n} valid cosignature(s) by witness keys enrolled in the registry.</small></p>",
        q = v.witness_quorum,
        n = v.witnesses.len()
    );
    if !wk.is_empty() {
        o.push_str("<table class=list><tr><th>见证方 Witness (key holder)</th><th>密钥编号 Key id</th><th>副署时间 Cosigned at</th></tr>");
        for w in wk {
            let at = if w.cosigned {
                tz.html(w.cosigned_at.saturating_mul(1_000_000))
            } else {
                "未副署 <small>did not cosign this checkpoint</small>".into()
            };
            let _ = write!(
                o,
                "<tr><td>{}</td><td><code>{}</code></td><td>{at}</td></tr>",
                esc(&w.name),
                esc(&w.keyid)
            );
        }
        o.push_str("</table>");
    }
}

/// The RFC 3161 timestamp tokens and their status.
fn timestamps_section(o: &mut String, ts: &Tokens, tz: &Tz) {
    o.push_str("<h2>可信时间戳 <small>Trusted timestamps (RFC 3161)</small></h2>");
    if ts.rows.is_empty() {
        o.push_str("<p>证据包不含时间戳。<small>The bundle carries no timestamp tokens.</small></p>");
    } else {
        o.push_str("<table class=list><tr><th>时间戳机构 TSA (certificate subject)</th><th>覆盖的检查点 Checkpoint</th><th>此前已存在 Existed before</th><th>状态 Status</th></tr>");
        for t in &ts.rows {
            let status = if t.verified {
                format!(
                    "<span class=ok>已验证 verified</span> <small>root {}</small>",
                    esc(&t.root)
                )
            } else if !ts.roots_given {
                "未验证（未提供 --tsa-root）<small>unverified: no --tsa-root given</small>".into()
            } else {
                format!("<span class=bad>未通过 failed</span> {}", esc(&t.problem))
            };
            let when = if t.gen_time_unix > 0 {
                tz.html(t.gen_time_unix.saturating_mul(1_000_000))
            } else {
                esc(&t.gen_time)
            };
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{} 条 <small>entries</small></td><td>{when}</td><td>{status}</td></tr>",
                esc(&t.tsa),
                t.checkpoint_size
            );
        }
        o.push_str("</table>");
    }
}

/// One record: kind, time, signers, status and what it says.
fn record_section(o: &mut String, r: &RecordVerdict, tz: &Tz) {
    let (zh, en) = kind_name(&r.kind);
    let who: Vec<String> = r.signers.iter().map(|g| g.name.clone()).collect();
    let signers: Vec<String> = r
        .signers
        .iter()
        .map(|g| {
            format!(
                "{} <small>[{}] {} key <code>{}</code></small>",
                esc(&g.name),
                esc(&g.roles.join(", ")),
                esc(&g.organization),
                esc(&g.keyid.chars().take(16).collect::<String>())
            )
        })
        .collect();
    let status = if r.problems.is_empty() {
        "<span class=ok>已验证 VERIFIED</span>".to_string()
    } else {
        format!(
            "<span class=bad>未通过 NOT VERIFIED</span> {}",
            esc(&r.problems.join("; "))
        )
    };
    let _ = write!(
        o,
        "<div class=rec id=\"r{idx}\"><h3>#{idx} {zh} <small>{en} · <code>{}</code></small></h3><table>\
<tr><th>记录时间 <small>Recorded at (node clock)</small></th><td>{}</td></tr>\
<tr><th>签署人 <small>Signed by</small></th><td>{}</td></tr>\
<tr><th>状态 <small>Status</small></th><td>{status}</td></tr></table>{}</div>",
        esc(&r.kind),
        tz.html(r.timestamp_micros),
        signers.join("<br>"),
        record_body(&r.kind, &r.payload, &who.join("、"), tz),
        idx = r.index
    );
}

/// Consistency with the court's earlier checkpoint, and the bundle-level problems.
fn closing_sections(o: &mut String, v: &BundleVerdict) {
    match &v.consistency {
        None => {}
        Some(Ok(n)) => {
            let _ = write!(
                o,
                "<h2>历史一致性 <small>Consistency</small></h2><p class=ok>法院此前持有的检查点（{n} 条）是本检查点的前缀：历史未被改写。<br><small>The court's earlier checkpoint (size {n}) is a prefix of this one: history was not rewritten.</small></p>"
            );
        }
        Some(Err(e)) => {
            let _ = write!(
                o,
                "<h2>历史一致性 <small>Consistency</small></h2><p class=bad>一致性失败 CONSISTENCY FAILED: {}</p>",
                esc(&e.to_string())
            );
        }
    }
    if !v.problems.is_empty() {
        o.push_str("<h2>问题 <small>Problems</small></h2><ul>");
        for p in &v.problems {
            let _ = write!(o, "<li class=bad>{}</li>", esc(p));
        }
        o.push_str("</ul>");
    }
}

/// The closing section: the commands and the hashes a reader needs to check the bundle without
/// trusting this page or the operator.
fn verify_section(b: &Bundle, v: &BundleVerdict, wk: &[WitnessKey], file: &str) -> String {
    let mut o =
        String::from("<h2 id=verify>如何独立核验 <small>How to verify this independently</small></h2><ol class=steps>");
    let _ = write!(
        o,
        "<li>核对节点公钥与运营方公开发布的公钥一致，然后离线运行：<br><small>Check that the node key below is the one the operator published, then run offline:</small><br>\
<code>ledger-verify bundle verify {f} --trusted-key '{k}' --tsa-root TSA-ROOT.pem --json verdict.json</code></li>\
<li>打印此页：<small>Render this page:</small> <code>ledger-verify bundle show {f} --trusted-key '{k}' --tsa-root TSA-ROOT.pem --html page.html</code></li>\
<li>不使用本软件时：每条记录的叶哈希为 SHA-256(0x00 ‖ 记录字节)（RFC 6962），与证据包中的包含证明逐层合并应得出下列根哈希；检查点须由节点公钥签名（C2SP signed-note）。每条记录的 <code>tlog_proof</code> 字段是 C2SP tlog-proof 文本，可用其他工具核验。<br>\
<small>Without this software: each record's leaf hash is SHA-256(0x00 ‖ entry bytes) (RFC 6962); folding it with the bundle's inclusion proof must give the root below, and the checkpoint must be signed by the node key (C2SP signed-note). Each record's <code>tlog_proof</code> field is C2SP tlog-proof text for other tools.</small></li></ol>",
        f = esc(file),
        k = esc(&b.node_key)
    );
    let _ = write!(
        o,
        "<table class=list><tr><th>项目 Item</th><th>值 Value</th></tr>\
<tr><td>检查点大小 Checkpoint size</td><td><code>{}</code></td></tr>\
<tr><td>检查点根哈希 Checkpoint root (hex)</td><td><code class=root>{}</code></td></tr>\
<tr><td>节点公钥 Node key</td><td><code>{}</code></td></tr>",
        v.checkpoint_size,
        v.checkpoint_root,
        esc(&b.node_key)
    );
    for w in wk {
        let _ = write!(
            o,
            "<tr><td>见证公钥 Witness key — {}</td><td><code class=wkey>{}</code></td></tr>",
            esc(&w.name),
            esc(&w.vkey)
        );
    }
    for e in &b.records {
        let lh = B64
            .decode(&e.leaf)
            .map(|x| ledger_core::hash::leaf_hash(&x).to_string())
            .unwrap_or_else(|_| "(leaf is not base64)".into());
        let _ = write!(
            o,
            "<tr><td>记录 #{} 叶哈希 Leaf hash</td><td><code class=leaf>{}</code></td></tr>",
            e.index,
            esc(&lh)
        );
    }
    o.push_str("</table>");
    o
}
