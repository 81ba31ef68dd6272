//! The provision state machine, as one table.
//!
//! States and events carry Ironic's exact strings (ironic/common/states.py).
//! Every allowed move is one row of [`TRANSITIONS`]; anything not in the table
//! is refused. The table is data: the conductor asks [`next`] and never
//! decides a move on its own.

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::states::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::states::UnknownName { kind: stringify!($name), name: s.to_owned() }),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_enum;

/// A string that names no known state, event or power state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

string_enum! {
    /// A node's `provision_state`.
    ProvisionState {
        Enroll => "enroll",
        Verifying => "verifying",
        Manageable => "manageable",
        Available => "available",
        Active => "active",
        Deploying => "deploying",
        DeployWait => "wait call-back",
        DeployFailed => "deploy failed",
        DeployHold => "deploy hold",
        Deleting => "deleting",
        Cleaning => "cleaning",
        CleanWait => "clean wait",
        CleanFailed => "clean failed",
        CleanHold => "clean hold",
        Error => "error",
        Inspecting => "inspecting",
        InspectWait => "inspect wait",
        InspectFailed => "inspect failed",
        Adopting => "adopting",
        AdoptFailed => "adopt failed",
        Rescue => "rescue",
        Rescuing => "rescuing",
        RescueWait => "rescue wait",
        RescueFailed => "rescue failed",
        Unrescuing => "unrescuing",
        UnrescueFailed => "unrescue failed",
        Servicing => "servicing",
        ServiceWait => "service wait",
        ServiceFailed => "service failed",
        ServiceHold => "service hold",
    }
}

string_enum! {
    /// What moves a node from one provision state to another: the verbs a
    /// user sends and the outcomes a flow reports.
    Event {
        Deploy => "deploy",
        Rebuild => "rebuild",
        Delete => "delete",
        Manage => "manage",
        Provide => "provide",
        Inspect => "inspect",
        Abort => "abort",
        Clean => "clean",
        Adopt => "adopt",
        Rescue => "rescue",
        Unrescue => "unrescue",
        Unhold => "unhold",
        Service => "service",
        Done => "done",
        Fail => "fail",
        Wait => "wait",
        Resume => "resume",
        Hold => "hold",
    }
}

string_enum! {
    /// A node's `power_state` and `target_power_state` values.
    PowerState {
        On => "power on",
        Off => "power off",
        Rebooting => "rebooting",
        SoftRebooting => "soft rebooting",
        SoftPowerOff => "soft power off",
        Error => "error",
    }
}

use Event as E;
use ProvisionState as S;

/// Every allowed (from, event, to), in Ironic's order.
pub const TRANSITIONS: &[(ProvisionState, Event, ProvisionState)] = &[
    (S::Available, E::Deploy, S::Deploying),
    (S::Deploying, E::Fail, S::DeployFailed),
    (S::DeployFailed, E::Rebuild, S::Deploying),
    (S::DeployFailed, E::Deploy, S::Deploying),
    (S::Deploying, E::Wait, S::DeployWait),
    (S::Deploying, E::Hold, S::DeployHold),
    (S::DeployWait, E::Hold, S::DeployHold),
    (S::DeployWait, E::Resume, S::Deploying),
    (S::DeployWait, E::Fail, S::DeployFailed),
    (S::DeployHold, E::Unhold, S::DeployWait),
    (S::DeployHold, E::Abort, S::DeployFailed),
    (S::DeployWait, E::Abort, S::DeployFailed),
    (S::Deploying, E::Done, S::Active),
    (S::Active, E::Rebuild, S::Deploying),
    (S::Active, E::Delete, S::Deleting),
    (S::DeployWait, E::Delete, S::Deleting),
    (S::DeployFailed, E::Delete, S::Deleting),
    (S::Deleting, E::Fail, S::Error),
    (S::Deleting, E::Clean, S::Cleaning),
    (S::Cleaning, E::Done, S::Available),
    (S::Cleaning, E::Fail, S::CleanFailed),
    (S::CleanWait, E::Fail, S::CleanFailed),
    (S::CleanWait, E::Abort, S::CleanFailed),
    (S::Cleaning, E::Wait, S::CleanWait),
    (S::Cleaning, E::Hold, S::CleanHold),
    (S::CleanWait, E::Hold, S::CleanHold),
    (S::CleanWait, E::Resume, S::Cleaning),
    (S::CleanHold, E::Abort, S::CleanFailed),
    (S::CleanHold, E::Unhold, S::CleanWait),
    (S::CleanFailed, E::Manage, S::Manageable),
    (S::Manageable, E::Provide, S::Cleaning),
    (S::Manageable, E::Clean, S::Cleaning),
    (S::Cleaning, E::Manage, S::Manageable),
    (S::Available, E::Manage, S::Manageable),
    (S::Error, E::Rebuild, S::Deploying),
    (S::Error, E::Delete, S::Deleting),
    (S::Manageable, E::Inspect, S::Inspecting),
    (S::Inspecting, E::Done, S::Manageable),
    (S::Inspecting, E::Fail, S::InspectFailed),
    (S::Inspecting, E::Wait, S::InspectWait),
    (S::InspectWait, E::Done, S::Manageable),
    (S::InspectWait, E::Fail, S::InspectFailed),
    (S::InspectWait, E::Abort, S::InspectFailed),
    (S::InspectWait, E::Resume, S::Inspecting),
    (S::InspectFailed, E::Manage, S::Manageable),
    (S::InspectFailed, E::Inspect, S::Inspecting),
    (S::Active, E::Rescue, S::Rescuing),
    (S::Rescuing, E::Done, S::Rescue),
    (S::Rescuing, E::Wait, S::RescueWait),
    (S::RescueWait, E::Resume, S::Rescuing),
    (S::Rescue, E::Rescue, S::Rescuing),
    (S::Rescue, E::Delete, S::Deleting),
    (S::RescueWait, E::Fail, S::RescueFailed),
    (S::Rescuing, E::Fail, S::RescueFailed),
    (S::RescueWait, E::Abort, S::RescueFailed),
    (S::RescueFailed, E::Rescue, S::Rescuing),
    (S::RescueFailed, E::Unrescue, S::Unrescuing),
    (S::RescueFailed, E::Delete, S::Deleting),
    (S::RescueWait, E::Delete, S::Deleting),
    (S::Rescue, E::Unrescue, S::Unrescuing),
    (S::Unrescuing, E::Done, S::Active),
    (S::Unrescuing, E::Fail, S::UnrescueFailed),
    (S::UnrescueFailed, E::Rescue, S::Rescuing),
    (S::UnrescueFailed, E::Unrescue, S::Unrescuing),
    (S::UnrescueFailed, E::Delete, S::Deleting),
    (S::Enroll, E::Manage, S::Verifying),
    (S::Verifying, E::Done, S::Manageable),
    (S::Verifying, E::Fail, S::Enroll),
    (S::Manageable, E::Adopt, S::Adopting),
    (S::Adopting, E::Done, S::Active),
    (S::Adopting, E::Fail, S::AdoptFailed),
    (S::AdoptFailed, E::Adopt, S::Adopting),
    (S::AdoptFailed, E::Manage, S::Manageable),
    (S::Servicing, E::Done, S::Active),
    (S::Active, E::Service, S::Servicing),
    (S::Servicing, E::Fail, S::ServiceFailed),
    (S::Servicing, E::Wait, S::ServiceWait),
    (S::Servicing, E::Hold, S::ServiceHold),
    (S::ServiceWait, E::Hold, S::ServiceHold),
    (S::ServiceHold, E::Service, S::Servicing),
    (S::ServiceHold, E::Unhold, S::ServiceWait),
    (S::ServiceWait, E::Resume, S::Servicing),
    (S::ServiceWait, E::Fail, S::ServiceFailed),
    (S::ServiceHold, E::Fail, S::ServiceFailed),
    (S::ServiceWait, E::Abort, S::ServiceFailed),
    (S::ServiceHold, E::Abort, S::ServiceFailed),
    (S::ServiceFailed, E::Service, S::Servicing),
    (S::ServiceFailed, E::Rescue, S::Rescuing),
    (S::ServiceFailed, E::Wait, S::ServiceWait),
    (S::ServiceFailed, E::Hold, S::ServiceHold),
    (S::ServiceFailed, E::Delete, S::Deleting),
    (S::ServiceFailed, E::Abort, S::Active),
    (S::ServiceWait, E::Delete, S::Deleting),
];

/// An event that the current state does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event} is not allowed in state {state}")]
pub struct RefusedEvent {
    pub state: ProvisionState,
    pub event: Event,
}

/// The state `event` moves `state` to, or why it cannot.
pub fn next(state: ProvisionState, event: Event) -> Result<ProvisionState, RefusedEvent> {
    TRANSITIONS
        .iter()
        .find(|(from, ev, _)| *from == state && *ev == event)
        .map(|(_, _, to)| *to)
        .ok_or(RefusedEvent { state, event })
}

/// Whether `state` accepts `event` at all.
pub fn accepts(state: ProvisionState, event: Event) -> bool {
    next(state, event).is_ok()
}

impl ProvisionState {
    /// Stable states change only on request; they never carry a target.
    pub fn is_stable(self) -> bool {
        matches!(
            self,
            S::Enroll | S::Manageable | S::Available | S::Active | S::Error | S::Rescue
        )
    }

    /// The stable state a node in `self` is heading to when nothing more
    /// specific was asked for (Ironic's `add_state(..., target=...)`).
    pub fn default_target(self) -> Option<ProvisionState> {
        match self {
            S::Verifying | S::Inspecting | S::InspectFailed | S::InspectWait => Some(S::Manageable),
            S::Deploying
            | S::DeployWait
            | S::DeployFailed
            | S::DeployHold
            | S::Adopting
            | S::AdoptFailed
            | S::Unrescuing
            | S::UnrescueFailed
            | S::Servicing
            | S::ServiceWait
            | S::ServiceFailed
            | S::ServiceHold => Some(S::Active),
            S::Cleaning | S::CleanWait | S::CleanFailed | S::CleanHold | S::Deleting => {
                Some(S::Available)
            }
            S::Rescuing | S::RescueWait | S::RescueFailed => Some(S::Rescue),
            S::Enroll | S::Manageable | S::Available | S::Active | S::Error | S::Rescue => None,
        }
    }

    /// States in which work is under way and nothing resumes it if the
    /// conductor doing it dies (Ironic's STUCK_STATES_TREATED_AS_FAIL).
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            S::Deploying
                | S::Cleaning
                | S::Verifying
                | S::Inspecting
                | S::Adopting
                | S::Rescuing
                | S::Unrescuing
                | S::Deleting
                | S::Servicing
        )
    }

    /// States that wait for an outside party (the agent, an inspector) and
    /// fail when it does not report in time.
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            S::DeployWait | S::CleanWait | S::InspectWait | S::RescueWait | S::ServiceWait
        )
    }

    /// States in which Ironic lets a user update a node's fields even though
    /// it is not stable (UPDATE_ALLOWED_STATES).
    pub fn allows_update(self) -> bool {
        self.is_stable()
            || matches!(
                self,
                S::DeployFailed
                    | S::Inspecting
                    | S::InspectFailed
                    | S::InspectWait
                    | S::CleanFailed
                    | S::Verifying
                    | S::AdoptFailed
                    | S::RescueFailed
                    | S::UnrescueFailed
                    | S::ServiceHold
                    | S::ServiceFailed
            )
    }

    /// States in which a node may be deleted (DELETE_ALLOWED_STATES).
    pub fn allows_delete(self) -> bool {
        matches!(self, S::Manageable | S::Enroll | S::AdoptFailed)
    }
}

/// The provision state and target a transition lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landing {
    pub state: ProvisionState,
    pub target: Option<ProvisionState>,
}

/// Apply `event` to `state`, computing the new target as Ironic does: an
/// explicit target wins, else the new state's default; stable states with no
/// work pending clear it.
pub fn land(
    state: ProvisionState,
    event: Event,
    explicit_target: Option<ProvisionState>,
) -> Result<Landing, RefusedEvent> {
    let to = next(state, event)?;
    let target = if to.is_stable() {
        None
    } else {
        explicit_target.or(to.default_target())
    };
    Ok(Landing { state: to, target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Ironic's table, written independently as text, so a typo in either
    /// copy fails the test.
    const IRONIC_TABLE: &str = "
        available deploy deploying; deploying fail deploy failed; deploy failed rebuild deploying;
        deploy failed deploy deploying; deploying wait wait call-back; deploying hold deploy hold;
        wait call-back hold deploy hold; wait call-back resume deploying; wait call-back fail deploy failed;
        deploy hold unhold wait call-back; deploy hold abort deploy failed; wait call-back abort deploy failed;
        deploying done active; active rebuild deploying; active delete deleting; wait call-back delete deleting;
        deploy failed delete deleting; deleting fail error; deleting clean cleaning; cleaning done available;
        cleaning fail clean failed; clean wait fail clean failed; clean wait abort clean failed;
        cleaning wait clean wait; cleaning hold clean hold; clean wait hold clean hold;
        clean wait resume cleaning; clean hold abort clean failed; clean hold unhold clean wait;
        clean failed manage manageable; manageable provide cleaning; manageable clean cleaning;
        cleaning manage manageable; available manage manageable; error rebuild deploying; error delete deleting;
        manageable inspect inspecting; inspecting done manageable; inspecting fail inspect failed;
        inspecting wait inspect wait; inspect wait done manageable; inspect wait fail inspect failed;
        inspect wait abort inspect failed; inspect wait resume inspecting; inspect failed manage manageable;
        inspect failed inspect inspecting; active rescue rescuing; rescuing done rescue; rescuing wait rescue wait;
        rescue wait resume rescuing; rescue rescue rescuing; rescue delete deleting; rescue wait fail rescue failed;
        rescuing fail rescue failed; rescue wait abort rescue failed; rescue failed rescue rescuing;
        rescue failed unrescue unrescuing; rescue failed delete deleting; rescue wait delete deleting;
        rescue unrescue unrescuing; unrescuing done active; unrescuing fail unrescue failed;
        unrescue failed rescue rescuing; unrescue failed unrescue unrescuing; unrescue failed delete deleting;
        enroll manage verifying; verifying done manageable; verifying fail enroll; manageable adopt adopting;
        adopting done active; adopting fail adopt failed; adopt failed adopt adopting; adopt failed manage manageable;
        servicing done active; active service servicing; servicing fail service failed; servicing wait service wait;
        servicing hold service hold; service wait hold service hold; service hold service servicing;
        service hold unhold service wait; service wait resume servicing; service wait fail service failed;
        service hold fail service failed; service wait abort service failed; service hold abort service failed;
        service failed service servicing; service failed rescue rescuing; service failed wait service wait;
        service failed hold service hold; service failed delete deleting; service failed abort active;
        service wait delete deleting";

    /// Splits "a b c d" into (state, event, state) by trying every event name
    /// as the separator: state names contain spaces, event names do not.
    fn parse_row(row: &str) -> (ProvisionState, Event, ProvisionState) {
        let words: Vec<&str> = row.split_whitespace().collect();
        for i in 1..words.len() - 1 {
            let (Ok(from), Ok(ev), Ok(to)) = (
                words[..i].join(" ").parse(),
                words[i].parse(),
                words[i + 1..].join(" ").parse(),
            ) else {
                continue;
            };
            return (from, ev, to);
        }
        panic!("cannot parse row {row:?}");
    }

    fn ironic_rows() -> HashSet<(ProvisionState, Event, ProvisionState)> {
        IRONIC_TABLE
            .split(';')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(parse_row)
            .collect()
    }

    #[test]
    fn every_pair_of_state_and_event_is_allowed_or_refused_as_in_ironic() {
        let rows = ironic_rows();
        assert_eq!(rows.len(), TRANSITIONS.len(), "duplicate or missing rows");
        let mut allowed = 0;
        for &state in ProvisionState::ALL {
            for &event in Event::ALL {
                let expected = rows
                    .iter()
                    .find(|(f, e, _)| *f == state && *e == event)
                    .map(|(_, _, t)| *t);
                match (next(state, event), expected) {
                    (Ok(to), Some(want)) => {
                        assert_eq!(to, want, "{state} --{event}-->");
                        allowed += 1;
                    }
                    (Err(refused), None) => assert_eq!(refused, RefusedEvent { state, event }),
                    (got, want) => panic!("{state} --{event}--> got {got:?}, Ironic {want:?}"),
                }
            }
        }
        assert_eq!(allowed, rows.len());
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for s in ProvisionState::ALL {
            assert_eq!(s.as_str().parse::<ProvisionState>(), Ok(*s));
        }
        for e in Event::ALL {
            assert_eq!(e.as_str().parse::<Event>(), Ok(*e));
        }
        for p in PowerState::ALL {
            assert_eq!(p.as_str().parse::<PowerState>(), Ok(*p));
        }
        assert!("nostate".parse::<ProvisionState>().is_err());
        assert!("Active".parse::<ProvisionState>().is_err());
    }

    #[test]
    fn every_state_is_reachable_from_enroll() {
        let mut seen = HashSet::from([S::Enroll]);
        let mut frontier = vec![S::Enroll];
        while let Some(s) = frontier.pop() {
            for (_, _, to) in TRANSITIONS.iter().filter(|(f, _, _)| *f == s) {
                if seen.insert(*to) {
                    frontier.push(*to);
                }
            }
        }
        assert_eq!(seen.len(), ProvisionState::ALL.len());
    }

    #[test]
    fn targets_follow_ironic() {
        let provide = land(S::Manageable, E::Provide, None).unwrap();
        assert_eq!(
            provide,
            Landing {
                state: S::Cleaning,
                target: Some(S::Available)
            }
        );
        let manual_clean = land(S::Manageable, E::Clean, Some(S::Manageable)).unwrap();
        assert_eq!(manual_clean.target, Some(S::Manageable));
        let done = land(S::Deploying, E::Done, None).unwrap();
        assert_eq!(
            done,
            Landing {
                state: S::Active,
                target: None
            }
        );
        let failed = land(S::Deploying, E::Fail, None).unwrap();
        assert_eq!(
            failed,
            Landing {
                state: S::DeployFailed,
                target: Some(S::Active)
            }
        );
        let verify_failed = land(S::Verifying, E::Fail, None).unwrap();
        assert_eq!(verify_failed.target, None);
    }

    #[test]
    fn every_unstable_state_has_a_stable_default_target() {
        for s in ProvisionState::ALL {
            match s.default_target() {
                Some(t) => assert!(!s.is_stable() && t.is_stable(), "{s} -> {t}"),
                None => assert!(s.is_stable(), "{s} has no target"),
            }
        }
    }
}
