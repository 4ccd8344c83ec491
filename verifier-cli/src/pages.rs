//! What the HTML pages of `bundle show --html` and `review --html` share: escaping, the court's
//! time zone, print CSS for A4, and each record kind rendered as labelled fields in Chinese and
//! English (the raw JSON stays in a collapsed `<details>`).
//!
//! Time zones: no time-zone database is used. `Asia/Shanghai` (the default; also `PRC`,
//! `Asia/Chongqing`, `Asia/Harbin`, `Asia/Urumqi` is not) is UTC+08:00 with no daylight saving time
//! since 1991, so it is a fixed offset; any other zone is given as `+HH:MM` / `-HH:MM` or `UTC`.
//! Times before 1991 in `Asia/Shanghai` would be off by the summer hour of 1986–1991; ledger
//! timestamps are all later.

use serde_json::Value;
use std::fmt::Write as _;

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The time zone times are shown in (UTC is always shown beside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tz {
    /// Offset east of UTC, seconds.
    pub offset_secs: i64,
    /// How the page names it, e.g. `Asia/Shanghai UTC+08:00`.
    pub label: String,
}

impl Default for Tz {
    fn default() -> Self {
        Self {
            offset_secs: 8 * 3600,
            label: "Asia/Shanghai 北京时间 UTC+08:00".into(),
        }
    }
}

impl Tz {
    /// Parses `Asia/Shanghai` (also `PRC`, `Asia/Chongqing`), `UTC`/`Z`, or `+HH:MM`/`-HH:MM`.
    ///
    /// # Errors
    /// Any other text.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "Asia/Shanghai" | "Asia/Chongqing" | "PRC" => return Ok(Self::default()),
            "UTC" | "Z" | "Etc/UTC" => {
                return Ok(Self {
                    offset_secs: 0,
                    label: "UTC".into(),
                });
            }
            _ => {}
        }
        let b = s.as_bytes();
        let ok = b.len() == 6
            && (b[0] == b'+' || b[0] == b'-')
            && b[3] == b':'
            && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit());
        if !ok {
            anyhow::bail!("--tz {s:?}: expected Asia/Shanghai, UTC or an offset such as +08:00");
        }
        let h = i64::from(b[1] - b'0') * 10 + i64::from(b[2] - b'0');
        let m = i64::from(b[4] - b'0') * 10 + i64::from(b[5] - b'0');
        if h > 14 || m > 59 {
            anyhow::bail!("--tz {s:?}: offset out of range");
        }
        let sign = if b[0] == b'-' { -1 } else { 1 };
        Ok(Self {
            offset_secs: sign * (h * 3600 + m * 60),
            label: format!("UTC{s}"),
        })
    }

    /// `YYYY-MM-DD HH:MM:SS` in this zone (seconds; UTC micros in).
    pub fn local(&self, micros: u64) -> String {
        let shifted = if self.offset_secs >= 0 {
            micros.saturating_add(self.offset_secs.unsigned_abs() * 1_000_000)
        } else {
            micros.saturating_sub(self.offset_secs.unsigned_abs() * 1_000_000)
        };
        let t = ledger_core::time::rfc3339_micros(shifted);
        format!("{} {}", &t[..10], &t[11..19])
    }

    /// The time as HTML: local time with the zone, and UTC beside it.
    pub fn html(&self, micros: u64) -> String {
        let utc = ledger_core::time::rfc3339_micros(micros);
        format!(
            "<span class=t>{} <small>{}</small></span> <small class=utc>(UTC {})</small>",
            self.local(micros),
            esc(&self.label),
            esc(&utc)
        )
    }
}

/// Style for screen and for printing on A4.
pub const CSS: &str = "body{font-family:'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',sans-serif;margin:2em auto;max-width:60em;color:#111;line-height:1.45}\
h1{font-size:1.6em;border-bottom:2px solid #333;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #999}\
h1 small,h2 small,h3 small{font-weight:normal;color:#444}\
table{border-collapse:collapse;width:100%;margin:.4em 0 1em}td,th{border:1px solid #999;padding:.3em .45em;vertical-align:top;font-size:90%;text-align:left}\
th{background:#eee;width:14em}table.list th{width:auto}.ok{color:#060;font-weight:bold}.bad{color:#b00;font-weight:bold}\
code{font-family:'DejaVu Sans Mono',monospace;font-size:88%;word-break:break-all;white-space:pre-wrap}\
.rec{border:1px solid #777;border-radius:4px;padding:.2em .8em .6em;margin:1em 0;page-break-inside:avoid;break-inside:avoid}\
.rec.flagged{border:2px solid #b00}.rec h3{margin:.4em 0;font-size:1.05em}.says{background:#f4f7fb;border-left:4px solid #36c;padding:.4em .6em;margin:.4em 0}\
.utc{color:#555}details summary{cursor:pointer;color:#333;font-size:90%}pre{white-space:pre-wrap;word-break:break-all;font-size:80%;background:#f6f6f6;padding:.4em}\
.verdict{font-size:1.1em;padding:.5em .8em;border:2px solid currentColor}ol.steps li{margin:.35em 0}\
@page{size:A4;margin:16mm 14mm}\
@media print{body{margin:0;max-width:none;font-size:10pt}details{display:none}a{color:inherit;text-decoration:none}h2{page-break-after:avoid;break-after:avoid}\
.rec{border-color:#999}.says{background:none}th{background:#eee;-webkit-print-color-adjust:exact;print-color-adjust:exact}}";

/// Payload fields in the order a page shows them, with their Chinese and English labels; fields
/// not listed come after, labelled with their JSON name.
const FIELDS: &[(&str, &str, &str)] = &[
    ("nomination_id", "提名编号", "Nomination id"),
    ("subject", "被测评对象", "Subject (cadre)"),
    ("subjects", "被测评对象", "Subjects (cadres)"),
    ("post", "职位", "Post"),
    ("organization", "单位", "Organization"),
    ("reason", "理由", "Reason"),
    ("pool_id", "候选池编号", "Pool id"),
    ("purpose", "用途", "Purpose"),
    ("members", "候选池", "Candidate pool"),
    ("pool", "候选池", "Candidate pool"),
    ("draw_id", "抽取编号", "Draw id"),
    ("strata", "分层与名额", "Strata and quotas"),
    ("exclusions", "回避排除", "Exclusions"),
    ("k", "抽取人数", "Number drawn (k)"),
    ("algorithm", "算法", "Algorithm"),
    ("parties", "随机数提供方", "Randomness parties"),
    (
        "reveal_at_size",
        "混入树根的日志大小",
        "Log size T whose root is mixed in",
    ),
    ("reveal_deadline_micros", "揭示截止", "Reveal deadline"),
    ("party", "提供方", "Party"),
    ("secret", "揭示的秘密值", "Revealed secret"),
    ("seed", "随机种子", "Seed"),
    ("root_at_size", "大小 T 时的树根", "Root at size T"),
    ("selection", "抽取结果", "Selected"),
    ("values", "公开来源数值", "Public source values"),
    ("missing", "未揭示方", "Parties that did not reveal"),
    ("deadline_micros", "截止时间", "Deadline"),
    ("fact_id", "事实编号", "Fact id"),
    ("source", "来源", "Source"),
    ("category", "类别", "Category"),
    (
        "content_hash",
        "内容哈希（内容不上链）",
        "Content hash (content kept off-ledger)",
    ),
    ("complaint_id", "投诉编号", "Complaint id"),
    ("sealed_identity", "投诉人身份", "Complainant identity"),
    ("verification_id", "核查编号", "Verification id"),
    ("target_id", "核查对象", "Record verified"),
    ("outcome", "结论", "Outcome"),
    ("summary", "摘要", "Summary"),
    ("decision_id", "决定编号", "Decision id"),
    ("evaluation_ref", "依据的测评", "Evaluation relied on"),
    ("evaluators", "依据的评议人", "Evaluators relied on"),
    ("accountability_id", "问责编号", "Accountability id"),
    ("refs", "涉及记录", "Refers to"),
    ("responsible", "责任人", "Responsible"),
    ("finding", "认定", "Finding"),
    ("opening", "法院开启的身份", "Identity opened by the court"),
    ("escrow_id", "托管编号", "Escrow id"),
    ("public_key", "公钥", "Public key"),
    ("key", "公钥", "Public key"),
    ("holder", "持有人", "Holder"),
    ("target_index", "被撤销的记录", "Record cancelled"),
    ("election_id", "选举编号", "Election id"),
    ("weights", "维度权重（%）", "Dimension weights (%)"),
    ("score_min", "最低分", "Lowest score"),
    ("score_max", "最高分", "Highest score"),
    ("opens_at_micros", "开始", "Opens"),
    ("closes_at_micros", "结束", "Closes"),
    ("credential_suite", "凭证算法", "Credential suite"),
    ("credential_key", "凭证公钥", "Credential key"),
    ("evaluator", "评议人", "Evaluator"),
    ("count", "数量", "Count"),
    ("blinded_message_hash", "盲化消息哈希", "Blinded message hash"),
    ("request_signature", "评议人申请签名", "Evaluator's request signature"),
    ("scores", "评分", "Scores"),
    ("comment_hash", "评语哈希", "Comment hash"),
    ("ballot_key", "一次性选票公钥", "One-time ballot key"),
    ("credential", "匿名凭证", "Anonymous credential"),
    ("ballot_count", "计入选票数", "Ballots counted"),
    ("ballot_indices", "选票记录序号", "Ballot entries"),
    ("results", "结果", "Results"),
    ("ticket_hash", "服务工单哈希", "Service ticket hash"),
    ("department", "部门", "Department"),
    ("rating", "评分（1–5）", "Rating (1–5)"),
    ("service_time_micros", "服务时间", "Service time"),
    ("name", "名称", "Name"),
    ("roles", "角色", "Roles"),
    ("scope", "授权范围", "Scope"),
    ("keyid", "密钥编号", "Key id"),
    ("new_key", "新公钥", "New key"),
    ("text", "内容", "Text"),
    ("charter", "章程", "Charter"),
    ("policy", "章程", "Charter"),
    ("origin", "账本名称", "Log origin"),
];

/// Position and labels of a payload field (`FIELDS.len()` and empty labels when unknown).
fn label(field: &str) -> (usize, &'static str, &'static str) {
    FIELDS
        .iter()
        .position(|(f, _, _)| *f == field)
        .map_or((FIELDS.len(), "", ""), |i| (i, FIELDS[i].1, FIELDS[i].2))
}

/// Chinese and English name of a record kind.
pub fn kind_name(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "nomination" => ("提名", "Nomination"),
        "pool.commit" => ("候选池承诺", "Pool commitment"),
        "draw.commit" => ("随机抽取承诺", "Draw commitment"),
        "draw.reveal" => ("随机数揭示", "Draw reveal"),
        "draw.result" => ("抽取结果", "Draw result"),
        "draw.sources" => ("公开来源数值", "Draw public sources"),
        "draw.void" => ("抽取作废", "Draw void"),
        "dossier.fact" => ("档案事实", "Dossier fact"),
        "complaint" => ("投诉", "Complaint"),
        "verification" => ("核查", "Verification"),
        "decision" => ("任用决定", "Decision"),
        "accountability" => ("问责", "Accountability"),
        "escrow.key" => ("托管公钥", "Escrow key"),
        "cancellation" => ("撤销", "Cancellation"),
        "election.open" => ("选举开始", "Election opened"),
        "credential.issued" => ("凭证发放", "Credential issued"),
        "ballot" => ("选票", "Ballot"),
        "tally" => ("计票", "Tally"),
        "evaluation.micro" => ("群众评价", "Citizen rating"),
        "key.enroll" => ("密钥登记", "Key enrolled"),
        "key.rotate" => ("密钥轮换", "Key rotated"),
        "key.revoke" => ("密钥吊销", "Key revoked"),
        "node.rotate" => ("节点密钥轮换", "Node key rotated"),
        "node.compromise" => ("节点密钥泄露声明", "Node key declared compromised"),
        "charter" => ("账本章程", "Charter"),
        "note" => ("备注", "Note"),
        _ => ("记录", "Record"),
    }
}

fn s<'a>(p: &'a Value, k: &str) -> &'a str {
    p.get(k).and_then(Value::as_str).unwrap_or("?")
}

fn strs(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn n(p: &Value, k: &str) -> String {
    p.get(k).map_or_else(|| "?".into(), |v| v.to_string())
}

fn len(p: &Value, k: &str) -> usize {
    p.get(k).and_then(Value::as_array).map_or(0, Vec::len)
}

/// One sentence in Chinese and one in English saying what the record means (plain text, not
/// escaped yet); `who` names the signers.
fn says(kind: &str, p: &Value, who: &str) -> Option<(String, String)> {
    says_selection(kind, p, who)
        .or_else(|| says_draw_outcome(kind, p))
        .or_else(|| says_dossier(kind, p))
        .or_else(|| says_case(kind, p, who))
        .or_else(|| says_election(kind, p))
}

/// [`says`] for nominations, pools and draw commitments.
fn says_selection(kind: &str, p: &Value, who: &str) -> Option<(String, String)> {
    Some(match kind {
        "nomination" => {
            let reason = p.get("reason").and_then(Value::as_str);
            (
                format!(
                    "{who} 提名 {} 任 {}（{}）{}",
                    s(p, "subject"),
                    s(p, "post"),
                    s(p, "organization"),
                    reason.map_or(String::new(), |r| format!("，理由：{r}"))
                ),
                format!(
                    "{who} nominated {} for the post of {} ({}){}",
                    s(p, "subject"),
                    s(p, "post"),
                    s(p, "organization"),
                    reason.map_or(String::new(), |r| format!("; reason: {r}"))
                ),
            )
        }
        "pool.commit" => (
            format!(
                "固定候选池 {}（{} 人），用于：{}；在任何随机数产生之前登记",
                s(p, "pool_id"),
                len(p, "members"),
                s(p, "purpose")
            ),
            format!(
                "Candidate pool {} of {} members fixed for: {}, before any randomness existed",
                s(p, "pool_id"),
                len(p, "members"),
                s(p, "purpose")
            ),
        ),
        "draw.commit" => {
            let quotas = p
                .get("strata")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| format!("{} {}", s(x, "name"), n(x, "quota")))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let parties = p
                .get("parties")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|x| s(x, "name")).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            (
                format!(
                    "抽取 {}：从 {} 人的候选池中按 {} 个分层（{}）抽取 {} 人，回避 {} 人；随机数由 {} 事先承诺，并混入日志达到 {} 条时的树根。结果可复现：任何人可由本承诺、该树根和各方揭示的秘密值重新计算（ledger-verify replay 即如此核验）。",
                    s(p, "draw_id"),
                    len(p, "pool"),
                    len(p, "strata"),
                    quotas,
                    n(p, "k"),
                    len(p, "exclusions"),
                    parties,
                    n(p, "reveal_at_size")
                ),
                format!(
                    "Draw {}: {} of a pool of {} in {} strata ({}), {} excluded; randomness committed in advance by {} and mixed with the log's root at size {}. The result is reproducible: anyone can recompute it from this commitment, that root and the parties' revealed secrets (ledger-verify replay does).",
                    s(p, "draw_id"),
                    n(p, "k"),
                    len(p, "pool"),
                    len(p, "strata"),
                    quotas,
                    len(p, "exclusions"),
                    parties,
                    n(p, "reveal_at_size")
                ),
            )
        }
        _ => return None,
    })
}

/// [`says`] for draw outcomes.
fn says_draw_outcome(kind: &str, p: &Value) -> Option<(String, String)> {
    Some(match kind {
        "draw.reveal" => (
            format!(
                "{} 揭示抽取 {} 的秘密值；其 SHA-256 必须等于承诺值",
                s(p, "party"),
                s(p, "draw_id")
            ),
            format!(
                "{} revealed its secret for draw {}; its SHA-256 must equal the commitment",
                s(p, "party"),
                s(p, "draw_id")
            ),
        ),
        "draw.result" => {
            let sel = selection(p);
            (
                format!(
                    "抽取 {} 的结果：{}。种子由大小 T 时的树根与各方秘密值确定，可独立复算。",
                    s(p, "draw_id"),
                    sel
                ),
                format!(
                    "Result of draw {}: {}. The seed follows from the root at size T and the secrets, so anyone can recompute it.",
                    s(p, "draw_id"),
                    sel
                ),
            )
        }
        "draw.void" => (
            format!(
                "抽取 {} 因 {} 未按期揭示而作废",
                s(p, "draw_id"),
                strs(p.get("missing"))
            ),
            format!(
                "Draw {} void: {} did not reveal by the deadline",
                s(p, "draw_id"),
                strs(p.get("missing"))
            ),
        ),
        _ => return None,
    })
}

/// [`says`] for dossier facts and complaints.
fn says_dossier(kind: &str, p: &Value) -> Option<(String, String)> {
    Some(match kind {
        "dossier.fact" => (
            format!(
                "{} 关于 {} 的档案事实（{}），内容以哈希登记",
                s(p, "source"),
                s(p, "subject"),
                s(p, "category")
            ),
            format!(
                "Fact from {} about {} ({}); the content is registered by its hash",
                s(p, "source"),
                s(p, "subject"),
                s(p, "category")
            ),
        ),
        "complaint" => {
            let sealed = p.get("sealed_identity").is_some();
            (
                format!(
                    "关于 {} 的投诉（{}，{}）{}",
                    s(p, "subject"),
                    s(p, "category"),
                    s(p, "organization"),
                    if sealed {
                        "；投诉人身份已密封，本页不显示"
                    } else {
                        ""
                    }
                ),
                format!(
                    "Complaint about {} ({}, {}){}",
                    s(p, "subject"),
                    s(p, "category"),
                    s(p, "organization"),
                    if sealed {
                        "; the complainant's identity is sealed and stays sealed here"
                    } else {
                        ""
                    }
                ),
            )
        }
        _ => return None,
    })
}

/// [`says`] for checks, decisions, findings and cancellations.
fn says_case(kind: &str, p: &Value, who: &str) -> Option<(String, String)> {
    Some(match kind {
        "verification" => (
            format!("核查 {}：结论 {}", s(p, "target_id"), s(p, "outcome")),
            format!("Check of {}: {}", s(p, "target_id"), s(p, "outcome")),
        ),
        "decision" => (
            format!(
                "{who} 决定：{} {} 任 {}；依据提名 {}、测评 {}{}",
                s(p, "outcome"),
                s(p, "subject"),
                s(p, "post"),
                s(p, "nomination_id"),
                s(p, "evaluation_ref"),
                if p.get("evaluators").is_some() {
                    format!("、评议人 {}", strs(p.get("evaluators")))
                } else {
                    String::new()
                }
            ),
            format!(
                "{who} decided: {} {} as {}, citing nomination {} and evaluation {}{}",
                s(p, "outcome"),
                s(p, "subject"),
                s(p, "post"),
                s(p, "nomination_id"),
                s(p, "evaluation_ref"),
                if p.get("evaluators").is_some() {
                    format!(" and evaluators {}", strs(p.get("evaluators")))
                } else {
                    String::new()
                }
            ),
        ),
        "accountability" => (
            format!(
                "认定 {} 对 {} 负责：{}",
                strs(p.get("responsible")),
                strs(p.get("refs")),
                s(p, "finding")
            ),
            format!(
                "Finding: {} responsible for {}: {}",
                strs(p.get("responsible")),
                strs(p.get("refs")),
                s(p, "finding")
            ),
        ),
        "cancellation" => (
            format!(
                "{who} 撤销记录 #{}，理由：{}（原记录仍保留在日志中）",
                n(p, "target_index"),
                s(p, "reason")
            ),
            format!(
                "{who} cancelled record #{}: {} (the record stays in the log)",
                n(p, "target_index"),
                s(p, "reason")
            ),
        ),
        _ => return None,
    })
}

/// [`says`] for elections, credentials, ballots, tallies, ratings and keys.
fn says_election(kind: &str, p: &Value) -> Option<(String, String)> {
    Some(match kind {
        "election.open" => (
            format!(
                "选举 {}：对象 {}，由抽取 {} 选出的评议人投票",
                s(p, "election_id"),
                strs(p.get("subjects")),
                s(p, "draw_id")
            ),
            format!(
                "Election {} about {}; the evaluators selected by draw {} may vote",
                s(p, "election_id"),
                strs(p.get("subjects")),
                s(p, "draw_id")
            ),
        ),
        "credential.issued" => (
            format!(
                "向评议人 {} 发放选举 {} 的匿名凭证（不显示用于哪张选票）",
                s(p, "evaluator"),
                s(p, "election_id")
            ),
            format!(
                "Anonymous credential for election {} issued to evaluator {} (it never says which ballot)",
                s(p, "election_id"),
                s(p, "evaluator")
            ),
        ),
        "ballot" => (
            format!("选举 {} 的匿名选票", s(p, "election_id")),
            format!("Anonymous ballot in election {}", s(p, "election_id")),
        ),
        "tally" => (
            format!(
                "选举 {} 计票：{} 张选票；核验程序重新计算",
                s(p, "election_id"),
                n(p, "ballot_count")
            ),
            format!(
                "Tally of election {}: {} ballots; the verifier recomputes it",
                s(p, "election_id"),
                n(p, "ballot_count")
            ),
        ),
        "evaluation.micro" => (
            format!(
                "群众对 {}（{}）的服务评价：{} 分",
                s(p, "subject"),
                s(p, "department"),
                n(p, "rating")
            ),
            format!(
                "Citizen rating of {} ({}): {} of 5",
                s(p, "subject"),
                s(p, "department"),
                n(p, "rating")
            ),
        ),
        "key.enroll" => (
            format!("登记 {} 的密钥，角色 {}", s(p, "name"), strs(p.get("roles"))),
            format!("Key of {} enrolled with roles {}", s(p, "name"), strs(p.get("roles"))),
        ),
        _ => return None,
    })
}

fn selection(p: &Value) -> String {
    p.get("selection")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| format!("{}: {}", s(x, "stratum"), strs(x.get("selected"))))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// A field's value as HTML.
fn value_html(field: &str, v: &Value, tz: &Tz) -> String {
    if field.ends_with("_micros")
        && let Some(m) = v.as_u64()
    {
        return tz.html(m);
    }
    match (field, v) {
        ("sealed_identity", Value::Object(o)) => format!(
            "已密封，仅托管方 {} 可开启 <small>Sealed to escrow {}; only its holder can open it. Commitment</small> <code>{}</code>",
            esc(o.get("escrow_id").and_then(Value::as_str).unwrap_or("?")),
            esc(o.get("escrow_id").and_then(Value::as_str).unwrap_or("?")),
            esc(o.get("commitment").and_then(Value::as_str).unwrap_or("?"))
        ),
        ("pool" | "members", Value::Array(a)) => {
            let items: Vec<String> = a
                .iter()
                .map(|m| {
                    format!(
                        "{} <small>({}, {})</small>",
                        esc(s(m, "id")),
                        esc(s(m, "stratum")),
                        esc(s(m, "affiliation"))
                    )
                })
                .collect();
            format!("{} 人 members: {}", a.len(), items.join(", "))
        }
        ("strata", Value::Array(a)) => a
            .iter()
            .map(|x| format!("{} × {}", esc(s(x, "name")), esc(&n(x, "quota"))))
            .collect::<Vec<_>>()
            .join("; "),
        ("exclusions", Value::Array(a)) => a
            .iter()
            .map(|x| format!("{} <small>({})</small>", esc(s(x, "id")), esc(s(x, "reason"))))
            .collect::<Vec<_>>()
            .join("; "),
        ("parties", Value::Array(a)) => a
            .iter()
            .map(|x| {
                format!(
                    "{} <small>key</small> <code>{}</code> <small>commitment</small> <code>{}</code>",
                    esc(s(x, "name")),
                    esc(s(x, "keyid")),
                    esc(s(x, "commitment"))
                )
            })
            .collect::<Vec<_>>()
            .join("<br>"),
        ("selection", _) => esc(&selection(&serde_json::json!({ "selection": v }))),
        (_, Value::String(t)) if t.len() >= 40 && !t.contains(' ') => format!("<code>{}</code>", esc(t)),
        (_, Value::String(t)) => esc(t),
        (_, Value::Number(x)) => x.to_string(),
        (_, Value::Bool(x)) => if *x { "是 yes" } else { "否 no" }.to_string(),
        (_, Value::Array(a)) if a.iter().all(|x| x.is_string() || x.is_number()) => esc(&a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", ")),
        (_, Value::Object(o)) if o.values().all(|x| x.is_string() || x.is_number()) => esc(&o
            .iter()
            .map(|(k, x)| format!("{k}: {}", x.as_str().map_or_else(|| x.to_string(), str::to_string)))
            .collect::<Vec<_>>()
            .join(", ")),
        (_, other) => format!("<code>{}</code>", esc(&other.to_string())),
    }
}

/// A record's content: a sentence in both languages, its fields labelled in both languages, and
/// the raw payload in a collapsed `<details>`. `who` names the signers (plain text).
pub fn record_body(kind: &str, payload: &str, who: &str, tz: &Tz) -> String {
    let mut o = String::new();
    let Ok(p) = serde_json::from_str::<Value>(payload) else {
        let _ = write!(
            o,
            "<p>内容不是 JSON <small>The payload is not JSON</small></p><pre>{}</pre>",
            esc(payload)
        );
        return o;
    };
    if let Some((zh, en)) = says(kind, &p, who) {
        let _ = write!(o, "<p class=says>{}<br><small>{}</small></p>", esc(&zh), esc(&en));
    }
    if let Value::Object(map) = &p {
        o.push_str("<table>");
        let mut fields: Vec<(&String, &Value)> = map.iter().filter(|(k, _)| *k != "version").collect();
        fields.sort_by_key(|(k, _)| (!k.ends_with("_id"), label(k).0));
        for (k, v) in fields {
            let (_, zh, en) = label(k);
            let head = if zh.is_empty() {
                format!("<code>{}</code>", esc(k))
            } else {
                format!("{zh} <small>{en}</small>")
            };
            let _ = write!(o, "<tr><th>{head}</th><td>{}</td></tr>", value_html(k, v, tz));
        }
        o.push_str("</table>");
    }
    let pretty = serde_json::to_string_pretty(&p).unwrap_or_else(|_| payload.to_string());
    let _ = write!(
        o,
        "<details><summary>原始记录 Raw JSON</summary><pre>{}</pre></details>",
        esc(&pretty)
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tz_parses_and_converts() {
        let t = Tz::default();
        // 2026-01-01T00:00:00Z is 08:00 in Beijing.
        let m = 1_767_225_600_000_000;
        assert_eq!(t.local(m), "2026-01-01 08:00:00");
        assert!(t.html(m).contains("UTC 2026-01-01T00:00:00.000000Z"));
        assert_eq!(Tz::parse("-05:30").expect("tz").local(m), "2025-12-31 18:30:00");
        assert_eq!(Tz::parse("UTC").expect("tz").local(m), "2026-01-01 00:00:00");
        assert_eq!(Tz::parse("Asia/Shanghai").expect("tz"), t);
        for bad in ["Europe/Paris", "+8", "+25:00", "08:00", "+08:60"] {
            assert!(Tz::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_text_is_escaped() {
        let payload = r#"{"version":1,"nomination_id":"n<script>alert(1)</script>","subject":"<script>x</script>","post":"a&b","organization":"o\"rg","reason":"<img src=x onerror=y>"}"#;
        let h = record_body("nomination", payload, "<b>evil</b>", &Tz::default());
        assert!(
            !h.contains("<script>") && !h.contains("<img") && !h.contains("<b>evil"),
            "{h}"
        );
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(h.contains("提名编号 <small>Nomination id</small>"), "{h}");
        assert!(h.contains("<details>"), "{h}");
        let h = record_body("note", "<script>not json", "", &Tz::default());
        assert!(!h.contains("<script>"), "{h}");
        let h = record_body(
            "x",
            r#"{"<script>":{"a":[1,"<script>"]},"t_micros":"<script>"}"#,
            "",
            &Tz::default(),
        );
        assert!(!h.contains("<script>"), "{h}");
    }

    #[test]
    fn kinds_read_as_sentences() {
        let tz = Tz::default();
        let nom = r#"{"version":1,"nomination_id":"nom-2026-017","subject":"cadre-0042","post":"deputy county head","organization":"org-county-7","reason":"performance review 2025"}"#;
        let h = record_body("nomination", nom, "Registrar Li", &tz);
        assert!(h.contains("Registrar Li 提名 cadre-0042 任 deputy county head"), "{h}");
        assert!(
            h.contains("Registrar Li nominated cadre-0042 for the post of deputy county head"),
            "{h}"
        );
        let commit = r#"{"version":1,"draw_id":"d1","purpose":"evaluator_selection","subjects":["c"],"pool":[{"id":"ev-001","stratum":"residents","affiliation":"s3"},{"id":"ev-002","stratum":"enterprises","affiliation":"f"}],"strata":[{"name":"residents","quota":1},{"name":"enterprises","quota":1}],"exclusions":[],"k":2,"algorithm":"ledger-draw-v1","parties":[{"name":"registrar","keyid":"ab","commitment":"cd"}],"reveal_at_size":1200,"reveal_deadline_micros":1767225600000000}"#;
        let h = record_body("draw.commit", commit, "", &tz);
        assert!(
            h.contains("2 of a pool of 2 in 2 strata (residents 1, enterprises 1)"),
            "{h}"
        );
        assert!(h.contains("reproducible"), "{h}");
        assert!(h.contains("2026-01-01 08:00:00"), "{h}");
        let complaint = r#"{"version":1,"complaint_id":"p1","subject":"c","category":"abuse","content_hash":"60","organization":"o","sealed_identity":{"escrow_id":"court","enc":"ENCBYTES","ciphertext":"CIPHERTEXT","commitment":"7c8a"}}"#;
        let h = record_body("complaint", complaint, "", &tz);
        assert!(
            h.contains("stays sealed") && h.contains("Sealed to escrow court"),
            "{h}"
        );
        let dec = r#"{"version":1,"decision_id":"dec","subject":"c","nomination_id":"nom-1","evaluation_ref":"draw-1","outcome":"promote","post":"p"}"#;
        let h = record_body("decision", dec, "Committee", &tz);
        assert!(h.contains("citing nomination nom-1 and evaluation draw-1"), "{h}");
    }
}
