//! Which events of a class the kernel can recognise some loaded rule may match.
//!
//! The probe can drop, in the kernel, events of a kind when it can tell from a few values
//! it already has (a `socket`'s domain; a `dup`'s new descriptor number and the family of
//! the socket it is) that no enabled rule can match them. [`Ruleset::may_match`] decides
//! that for one representative event of a class: it evaluates every enabled rule's
//! condition knowing only the fields the class fixes, in three-valued logic
//! ([`crate::compile::Node::eval_known`]); a rule whose condition is not decided `false`
//! may match, and the class is reported. The representative events are built by the probe
//! with its real enrichment (`falco_learn_probe::filter::EventFilterPlan`), so the fields
//! have exactly the values the live events will have.

use crate::Ruleset;
use falco_learn_event::fields::FieldRef;
use falco_learn_event::Event;

impl Ruleset {
    /// The enabled rules that may match an event like `ev` when only the fields `known`
    /// accepts are fixed by its class (see the module docs); empty: none can.
    pub fn may_match(&self, ev: &Event, known: &dyn Fn(&FieldRef) -> bool) -> Vec<String> {
        let bit = 1u64 << ev.event_type().index();
        self.rules()
            .iter()
            .filter(|r| r.enabled && r.evttypes & bit != 0)
            .filter(|r| r.condition().eval_known(ev, known) != Some(false))
            .map(|r| r.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use falco_learn_event::fields::{parse_field_ref, FieldId};
    use falco_learn_event::{Args, EventType, EventTypeField, Fd, FdType};

    fn rules(conds: &[(&str, &str)]) -> Ruleset {
        let text: String = conds
            .iter()
            .map(|(name, cond)| {
                format!("- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o\n  priority: WARNING\n")
            })
            .collect();
        let (rs, report) = Ruleset::load_sources(&[("t.yaml", &text)]);
        assert!(report.errors.is_empty(), "{report}");
        rs
    }

    fn socket(domain: u32) -> Event {
        Event {
            typ: EventTypeField(EventType::Socket),
            res: 3,
            args: Args::Socket {
                domain,
                typ: 1,
                proto: 0,
            },
            ..Event::default()
        }
    }

    fn domain_known(f: &FieldRef) -> bool {
        *f == parse_field_ref("evt.arg.domain").expect("field") || f.id == FieldId::EvtType
    }

    #[test]
    fn a_rule_is_out_only_when_its_known_fields_decide_false() {
        let rs = rules(&[
            (
                "packet",
                "evt.type = socket and evt.arg.domain contains AF_PACKET and proc.name != tcpdump",
            ),
            (
                "netlink",
                "evt.type = socket and not evt.arg.domain in (AF_INET, AF_INET6)",
            ),
            ("exec", "evt.type = execve and proc.name = nc"),
        ]);
        // AF_INET: both socket rules are false whatever the process
        assert!(rs.may_match(&socket(2), &domain_known).is_empty());
        // AF_PACKET: the packet rule depends on the process name (unknown): it may match
        assert_eq!(
            rs.may_match(&socket(17), &domain_known),
            vec!["packet".to_string(), "netlink".to_string()]
        );
        // nothing known but the type: every socket rule may match
        let only_type = |f: &FieldRef| f.id == FieldId::EvtType;
        assert_eq!(rs.may_match(&socket(2), &only_type).len(), 2);
    }

    #[test]
    fn or_is_decided_by_one_true_branch_and_and_by_one_false() {
        let rs = rules(&[(
            "r",
            "evt.type = dup2 and (evt.rawres in (0, 1, 2) or proc.name = sh) and fd.type = ipv4",
        )]);
        let dup = |res: i64, typ: FdType| Event {
            typ: EventTypeField(EventType::Dup2),
            res,
            fd: Some(Fd {
                num: res,
                typ,
                ..Fd::default()
            }),
            ..Event::default()
        };
        let known = |f: &FieldRef| {
            matches!(
                f.id,
                FieldId::EvtType | FieldId::EvtRawRes | FieldId::FdType
            )
        };
        assert!(rs.may_match(&dup(1, FdType::Ipv4), &known).len() == 1);
        // not a socket: false whatever the process
        assert!(rs.may_match(&dup(1, FdType::File), &known).is_empty());
        // fd 5 of an ipv4 socket: depends on proc.name
        assert!(rs.may_match(&dup(5, FdType::Ipv4), &known).len() == 1);
    }
}
