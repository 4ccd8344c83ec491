//! The review in words: the flag messages, the scope line and the plain-text report. Rendering
//! only: what is flagged is decided in [`super::analysis`].

use super::Filter;
use super::analysis::{Finding, FindingKind, Revealer, Who};
use super::model::{Flag, ReviewReport};
use ledger_core::time::rfc3339_micros;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The flag a finding is reported as, worded.
pub fn flag(f: Finding) -> Flag {
    let mut accountability: BTreeMap<String, Vec<String>> = f
        .accountability
        .iter()
        .map(|(role, who)| ((*role).to_string(), names(who)))
        .collect();
    if let FindingKind::DrawVoided { withheld, .. } = &f.kind {
        let who = withheld
            .iter()
            .map(|(p, r)| {
                let by = match r {
                    Revealer::Key(holder) => holder.as_deref().unwrap_or("?"),
                    Revealer::PublicSources => "public sources",
                };
                format!("{p} ({by})")
            })
            .collect();
        accountability.insert("did not reveal".into(), who);
    }
    Flag {
        code: f.kind.code().to_string(),
        message: message(f.kind),
        index: f.index,
        subject: f.subject,
        evidence: f.evidence,
        accountability,
    }
}

/// What a finding says.
fn message(kind: FindingKind) -> String {
    match kind {
        FindingKind::Registry { error } => error.to_string(),
        FindingKind::Rule { detail, .. } => detail,
        FindingKind::Redraw { draw_id } => {
            format!("draw {draw_id} repeats an earlier, uncancelled draw for the same purpose and subject")
        }
        FindingKind::PoolSkewed {
            draw_id,
            count,
            pool,
            affiliation,
        } => format!(
            "draw {draw_id}: {count} of {pool} pool members share the affiliation {affiliation:?} (more than half)"
        ),
        FindingKind::MaliciousFalseReport {
            complaint_id,
            identity,
            finding,
        } => format!(
            "complaint {complaint_id} was found a malicious false report; the court's opening names its \
             complainant {identity:?} (finding: {finding})"
        ),
        FindingKind::DrawVoided { draw_id, withheld } => format!(
            "draw {draw_id} was voided by the node at its deadline: {} did not reveal (a withheld reveal \
             can abort a draw whose outcome the withholding party already knew)",
            withheld.into_iter().map(|(p, _)| p).collect::<Vec<_>>().join(", ")
        ),
        FindingKind::DrawAbandoned { draw_id } => {
            format!("draw {draw_id} passed its reveal deadline without a result and was not cancelled")
        }
        FindingKind::PromotedWithUnverifiedComplaints { subject, open } => format!(
            "decision on {subject} while {open} complaint(s)/dossier fact(s) about them had no verification (带病提拔 risk)"
        ),
        FindingKind::EvaluatorNotFromDraw {
            subject,
            outside,
            evaluation_ref,
        } => format!(
            "decision on {subject} relied on evaluator(s) {} whom draw {evaluation_ref} did not select",
            outside.join(", ")
        ),
        FindingKind::NodeKeyCompromised {
            kind,
            about,
            keyid,
            as_of,
            at,
        } => format!(
            "{kind} of {about} is signed by the node key {keyid}, declared compromised as of index {as_of} by the \
             node.compromise record at index {at}: it must be re-done under the new node key"
        ),
        FindingKind::LateNomination {
            nomination_id,
            evaluation_ref,
        } => format!("nomination {nomination_id} was recorded after the evaluation {evaluation_ref} it relies on"),
    }
}

/// Signers and named people as shown: a key the registry does not know by the start of its id.
pub fn names(who: &[Who]) -> Vec<String> {
    who.iter()
        .map(|w| match w {
            Who::Name(n) => n.clone(),
            Who::UnknownKey(keyid) => format!("unknown key {}", keyid.chars().take(12).collect::<String>()),
        })
        .collect()
}

/// The filter in words.
pub fn scope(f: &Filter) -> String {
    let mut scope = match (&f.subject, &f.draw) {
        (Some(s), _) => format!("cadre {s}"),
        (None, Some(d)) => format!("draw {d}"),
        _ => "whole log".into(),
    };
    if f.from.is_some() || f.to.is_some() {
        let _ = write!(
            scope,
            ", period {} – {}",
            f.from.map_or("start".into(), rfc3339_micros),
            f.to.map_or("end".into(), rfc3339_micros)
        );
    }
    scope
}

/// A mean rating for display (never compared byte for byte): two decimals.
pub fn mean(sum: u64, count: u64) -> String {
    format!("{:.2}", sum as f64 / count.max(1) as f64)
}

/// A timeline entry's time as shown: RFC 3339.
pub fn timeline_time(micros: u64) -> String {
    rfc3339_micros(micros)
}

/// The payload as shown in the timeline: its first 300 characters.
pub fn timeline_payload(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).chars().take(300).collect()
}

/// The human report.
pub fn human(r: &ReviewReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "回溯测评 Retrospective review — {} ({} entries from {})",
        r.scope, r.entries, r.source
    );
    let _ = writeln!(s, "\nFlags: {}", r.flags.len());
    for f in &r.flags {
        let _ = writeln!(s, "  [{}] entry {} {}: {}", f.code, f.index, f.subject, f.message);
        let _ = writeln!(s, "      evidence: entries {:?}", f.evidence);
        for (role, who) in &f.accountability {
            let _ = writeln!(s, "      {role}: {}", who.join(", "));
        }
    }
    organizations_text(&mut s, r);
    elections_text(&mut s, r);
    let _ = writeln!(s, "\nTimeline ({} records):", r.timeline.len());
    for t in &r.timeline {
        let _ = writeln!(
            s,
            "  #{} {} {} by {}: {}",
            t.index,
            t.time,
            t.kind,
            t.signers.join(", "),
            t.payload
        );
    }
    s
}

/// Complaint verification per organization and the citizen micro-evaluations.
fn organizations_text(s: &mut String, r: &ReviewReport) {
    if !r.organizations.is_empty() {
        let _ = writeln!(s, "\nComplaint verification by organization:");
        for (org, o) in &r.organizations {
            let rate = if o.before_decision == 0 {
                100.0
            } else {
                100.0 * o.verified_before_decision as f64 / o.before_decision as f64
            };
            let _ = writeln!(
                s,
                "  {}: {} complaints, {} verified; {} concerned a cadre later decided on, {} verified before the decision ({rate:.0}%); {} redraws",
                if org.is_empty() { "(unspecified)" } else { org },
                o.complaints,
                o.verified,
                o.before_decision,
                o.verified_before_decision,
                o.redraws
            );
        }
    }
    if !r.micro.is_empty() {
        let _ = writeln!(s, "\nCitizen micro-evaluations (无感化评价) in the period:");
        for m in &r.micro {
            let _ = writeln!(
                s,
                "  {} / {}: {} ratings, mean {} of 5",
                m.subject, m.department, m.count, m.mean
            );
        }
    }
}

/// Election tallies (mean score per dimension) and credentials per election.
fn elections_text(s: &mut String, r: &ReviewReport) {
    if !r.elections.is_empty() {
        let _ = writeln!(
            s,
            "\nElections (tallies recomputed from the ballots on replay; mean score per dimension):"
        );
        for e in &r.elections {
            let n = e.ballot_count.max(1) as f64;
            for x in &e.results {
                let d = &x.sums;
                let _ = writeln!(
                    s,
                    "  {} (tally entry {}, {} ballots) {}: political {:.1}, performance {:.1}, integrity {:.1}, \
                     public opinion {:.1}, responsibility {:.1}; weighted score {}",
                    e.election_id,
                    e.index,
                    e.ballot_count,
                    x.subject,
                    d.political as f64 / n,
                    d.performance as f64 / n,
                    d.integrity as f64 / n,
                    d.public_opinion as f64 / n,
                    d.responsibility as f64 / n,
                    x.weighted_score.as_deref().unwrap_or("none (no ballot)")
                );
            }
        }
    }
    if !r.credentials.is_empty() {
        let _ = writeln!(
            s,
            "\nCredentials per election (requested personally / on the registrar's word):"
        );
        for e in &r.credentials {
            let _ = writeln!(
                s,
                "  {}: {} issued to {} eligible evaluators ({} with a pool key): {} requested personally (signed), {} on the registrar's word alone",
                e.election_id, e.issued, e.eligible, e.with_key, e.requested, e.registrar_word
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::analysis::Finding;

    #[test]
    fn a_voided_draw_is_worded_with_who_withheld_each_reveal() {
        let kind = FindingKind::DrawVoided {
            draw_id: "d-1".into(),
            withheld: vec![
                ("court".into(), Revealer::Key(Some("judge wang".into()))),
                ("lost".into(), Revealer::Key(None)),
                ("beacon".into(), Revealer::PublicSources),
            ],
        };
        let mut accountability = BTreeMap::new();
        accountability.insert(
            "registrar",
            vec![Who::Name("li".into()), Who::UnknownKey("ab".repeat(32))],
        );
        let f = flag(Finding {
            kind,
            index: 9,
            subject: "cadre-1".into(),
            evidence: vec![3, 9],
            accountability,
        });
        assert_eq!(f.code, "DRAW_VOIDED");
        assert_eq!(
            f.message,
            "draw d-1 was voided by the node at its deadline: court, lost, beacon did not reveal (a withheld \
             reveal can abort a draw whose outcome the withholding party already knew)"
        );
        assert_eq!(f.accountability["registrar"], ["li", "unknown key abababababab"]);
        assert_eq!(
            f.accountability["did not reveal"],
            ["court (judge wang)", "lost (?)", "beacon (public sources)"]
        );
        assert_eq!(
            (f.index, f.subject.as_str(), f.evidence.as_slice()),
            (9, "cadre-1", &[3, 9][..])
        );
    }

    #[test]
    fn the_scope_names_the_filter_and_the_period() {
        assert_eq!(scope(&Filter::default()), "whole log");
        let f = Filter {
            subject: Some("c".into()),
            draw: Some("d".into()),
            from: Some(0),
            to: None,
        };
        assert_eq!(scope(&f), "cadre c, period 1970-01-01T00:00:00.000000Z – end");
        assert_eq!(mean(7, 2), "3.50");
        assert_eq!(mean(0, 0), "0.00");
    }
}
