//! The review as one self-contained HTML page. Rendering only.

use super::model::ReviewReport;
use crate::pages::{CSS, Tz, esc, kind_name, record_body};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// One self-contained HTML page: a timeline chart (inline SVG), the tables, and each record as
/// labelled fields in Chinese and English with its time in `tz` (UTC beside).
pub fn html(r: &ReviewReport, tz: &Tz) -> String {
    let n = r.timeline.len().max(1) as f64;
    let flagged: BTreeSet<u64> = r.flags.iter().flat_map(|f| f.evidence.iter().copied()).collect();
    let svg = timeline_svg(r, &flagged, n, tz);
    let mut flags = flag_rows(r);
    let (mut orgs, mut micro) = (org_rows(r), micro_rows(r));
    let tl = record_divs(r, &flagged, tz);
    let none = |cols: usize| format!("<tr><td colspan={cols}>无 <small>None</small></td></tr>");
    if flags.is_empty() {
        flags = none(6);
    }
    if orgs.is_empty() {
        orgs = none(5);
    }
    if micro.is_empty() {
        micro = none(4);
    }
    format!(
        "<!DOCTYPE html><html lang=zh><head><meta charset=utf-8><title>回溯测评 Retrospective review</title><style>{CSS}</style></head><body>\
<h1>回溯测评 <small>Retrospective review</small></h1><p>范围 Scope: {} — {} 条记录 entries read from {}<br>时区 Time zone: {} <small>(UTC shown beside)</small></p>\
<h2>时间线 <small>Timeline</small></h2>{svg}\
<h2>问题标记 <small>Flags</small> ({})</h2><table class=list><tr><th>代码 Code</th><th>记录 Entry</th><th>对象 Subject</th><th>说明 What</th><th>证据 Evidence</th><th>责任链 Accountability</th></tr>{flags}</table>\
<h2>信访核查率 <small>Complaint verification by organization</small></h2><table class=list><tr><th>单位 Organization</th><th>投诉 Complaints</th><th>已核查 Verified</th><th>决定前核查 Verified before decision</th><th>重抽 Redraws</th></tr>{orgs}</table>\
<h2>群众评价 <small>Citizen micro-evaluations</small></h2><table class=list><tr><th>对象 Subject</th><th>部门 Department</th><th>评价数 Ratings</th><th>平均 Mean (1–5)</th></tr>{micro}</table>\
<h2>记录 <small>Records</small></h2>{tl}\
<h2>如何独立核验 <small>How to verify this independently</small></h2><ol class=steps>\
<li>用同一数据源重放账本，逐条核验哈希、链接、签名、登记册规则和检查点：<br><small>Replay the same source; every hash, link, signature, registry rule and checkpoint is re-checked:</small> <code>ledger-verify replay --export LOG-EXPORT</code></li>\
<li>重新生成本报告（结果应相同）：<small>Regenerate this review (it must come out the same):</small> <code>ledger-verify review --export LOG-EXPORT --html review.html</code> <small>(同一范围 same scope: --subject / --draw / --from / --to)</small></li>\
<li>单条记录作为法庭证据时，导出证据包并离线核验：<small>For a record used as evidence, export a court bundle and verify it offline:</small> <code>ledger-verify bundle export --index N -o b.ledger-bundle.json</code>, <code>ledger-verify bundle verify b.ledger-bundle.json --trusted-key NODE-KEY</code></li></ol></body></html>\n",
        esc(&r.scope),
        r.entries,
        esc(&r.source),
        esc(&tz.label),
        r.flags.len()
    )
}

/// The timeline as a strip of dots, flagged entries in red.
fn timeline_svg(r: &ReviewReport, flagged: &BTreeSet<u64>, n: f64, tz: &Tz) -> String {
    let mut svg = String::from(
        "<svg width=\"900\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\"><line x1=\"10\" y1=\"30\" x2=\"890\" y2=\"30\" stroke=\"#888\"/>",
    );
    for (i, t) in r.timeline.iter().enumerate() {
        let x = 10.0 + 880.0 * (i as f64 + 0.5) / n;
        let color = if flagged.contains(&t.index) { "#c00" } else { "#06c" };
        let _ = write!(
            svg,
            "<circle cx=\"{x:.1}\" cy=\"30\" r=\"6\" fill=\"{color}\"><title>#{} {} {}</title></circle>",
            t.index,
            esc(&t.kind),
            esc(&tz.local(t.timestamp_micros))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One table row per flag, with its evidence and accountability chain.
fn flag_rows(r: &ReviewReport) -> String {
    let mut flags = String::new();
    for f in &r.flags {
        let acc: Vec<String> = f
            .accountability
            .iter()
            .map(|(k, v)| format!("{}: {}", esc(k), esc(&v.join(", "))))
            .collect();
        let _ = writeln!(
            flags,
            "<tr><td class=bad>{}</td><td><a href=\"#r{i}\">#{i}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.code),
            esc(&f.subject),
            esc(&f.message),
            f.evidence
                .iter()
                .map(|e| format!("<a href=\"#r{e}\">#{e}</a>"))
                .collect::<Vec<_>>()
                .join(", "),
            acc.join("<br>"),
            i = f.index
        );
    }
    flags
}

/// One table row per organization's complaint verification.
fn org_rows(r: &ReviewReport) -> String {
    let mut orgs = String::new();
    for (org, o) in &r.organizations {
        let _ = writeln!(
            orgs,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
            esc(org),
            o.complaints,
            o.verified,
            o.verified_before_decision,
            o.before_decision,
            o.redraws
        );
    }
    orgs
}

/// One table row per subject and department rated.
fn micro_rows(r: &ReviewReport) -> String {
    let mut micro = String::new();
    for m in &r.micro {
        let _ = writeln!(
            micro,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.subject),
            esc(&m.department),
            m.count,
            esc(&m.mean)
        );
    }
    micro
}

/// Every record of the timeline, flagged ones marked.
fn record_divs(r: &ReviewReport, flagged: &BTreeSet<u64>, tz: &Tz) -> String {
    let mut tl = String::new();
    for t in &r.timeline {
        let cls = if flagged.contains(&t.index) { " flagged" } else { "" };
        let (zh, en) = kind_name(&t.kind);
        let _ = writeln!(
            tl,
            "<div class=\"rec{cls}\" id=\"r{idx}\"><h3>#{idx} {zh} <small>{en} · <code>{}</code></small></h3><table>\
<tr><th>记录时间 <small>Recorded at</small></th><td>{}</td></tr><tr><th>签署人 <small>Signed by</small></th><td>{}</td></tr></table>{}</div>",
            esc(&t.kind),
            tz.html(t.timestamp_micros),
            esc(&t.signers.join(", ")),
            record_body(&t.kind, &t.full_payload, &t.signers.join("、"), tz),
            idx = t.index
        );
    }
    tl
}
