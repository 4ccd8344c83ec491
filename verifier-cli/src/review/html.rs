//! The review as one self-contained HTML page. Rendering only.

use super::model::ReviewReport;
use std::collections::BTreeSet;
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained HTML page: a timeline chart (inline SVG) and the tables.
pub fn html(r: &ReviewReport) -> String {
    let n = r.timeline.len().max(1) as f64;
    let flagged: BTreeSet<u64> = r.flags.iter().flat_map(|f| f.evidence.iter().copied()).collect();
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
            esc(&t.time)
        );
    }
    svg.push_str("</svg>");
    let mut flags = String::new();
    for f in &r.flags {
        let acc: Vec<String> = f
            .accountability
            .iter()
            .map(|(k, v)| format!("{}: {}", esc(k), esc(&v.join(", "))))
            .collect();
        let _ = writeln!(
            flags,
            "<tr><td class=bad>{}</td><td>#{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr>",
            esc(&f.code),
            f.index,
            esc(&f.subject),
            esc(&f.message),
            f.evidence,
            acc.join("<br>")
        );
    }
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
    let mut tl = String::new();
    for t in &r.timeline {
        let cls = if flagged.contains(&t.index) { " class=bad" } else { "" };
        let _ = writeln!(
            tl,
            "<tr{cls}><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            t.index,
            esc(&t.time),
            esc(&t.kind),
            esc(&t.signers.join(", ")),
            esc(&t.payload)
        );
    }
    format!(
        "<!DOCTYPE html><html lang=zh><head><meta charset=utf-8><title>回溯测评 Retrospective review</title><style>\
body{{font-family:sans-serif;margin:2em;max-width:75em}}table{{border-collapse:collapse;width:100%;margin-bottom:1.5em}}\
td,th{{border:1px solid #999;padding:.35em;vertical-align:top;font-size:90%}}th{{background:#eee}}.bad{{color:#b00}}\
code{{white-space:pre-wrap;word-break:break-all}}</style></head><body>\
<h1>回溯测评 <small>Retrospective review</small></h1><p>范围 Scope: {} — {} 条记录 entries read from {}</p>\
<h2>时间线 <small>Timeline</small></h2>{svg}\
<h2>问题标记 <small>Flags</small> ({})</h2><table><tr><th>代码 Code</th><th>记录 Entry</th><th>对象 Subject</th><th>说明 What</th><th>证据 Evidence</th><th>责任链 Accountability</th></tr>{flags}</table>\
<h2>信访核查率 <small>Complaint verification by organization</small></h2><table><tr><th>单位 Organization</th><th>投诉 Complaints</th><th>已核查 Verified</th><th>决定前核查 Verified before decision</th><th>重抽 Redraws</th></tr>{orgs}</table>\
<h2>群众评价 <small>Citizen micro-evaluations</small></h2><table><tr><th>对象 Subject</th><th>部门 Department</th><th>评价数 Ratings</th><th>平均 Mean (1–5)</th></tr>{micro}</table>\
<h2>记录 <small>Records</small></h2><table><tr><th>序号</th><th>时间 Time</th><th>类型 Kind</th><th>签署 Signed by</th><th>内容 Content</th></tr>{tl}</table></body></html>\n",
        esc(&r.scope),
        r.entries,
        esc(&r.source),
        r.flags.len()
    )
}
