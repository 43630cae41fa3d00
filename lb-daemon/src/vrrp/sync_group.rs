//! `vrrp_sync_group` policy, pure: members move together (one becoming master, backup or
//! faulty takes the others along), a member's fault is every member's, and the group has a
//! state of its own once its members agree. The engine carries out what this decides.

use crate::config::{self, Notify};

use super::instance::State;

#[derive(Clone, Debug, PartialEq)]
pub struct SyncGroup {
    pub name: String,
    /// Indexes of the member instances in the engine's list.
    pub members: Vec<usize>,
    pub notify: Notify,
    /// The group's `track_bfd` (unweighted: a fault of every member while down).
    pub track_bfd: Vec<config::Tracked>,
    /// The state all members last agreed on (INIT until they first do).
    pub state: State,
}

/// The groups of `configured` over the instances named `names` (by index), and which group
/// each instance is in. A group that survives a reload keeps its state (so its notify
/// scripts do not run again); names that match no instance are left out.
pub fn build(
    configured: &[config::SyncGroup],
    names: &[&str],
    old: &[SyncGroup],
) -> (Vec<SyncGroup>, Vec<Option<usize>>) {
    let mut member_of = vec![None; names.len()];
    let mut groups = Vec::new();
    for sg in configured {
        let members: Vec<usize> = sg.group.iter().filter_map(|n| names.iter().position(|i| i == n)).collect();
        for &m in &members {
            member_of[m] = Some(groups.len());
        }
        let state = old.iter().find(|o| o.name == sg.name).map_or(State::Init, |o| o.state);
        groups.push(SyncGroup {
            name: sg.name.clone(),
            members,
            notify: sg.notify.clone(),
            track_bfd: sg.track_bfd.clone(),
            state,
        });
    }
    (groups, member_of)
}

/// Each instance's tracking (weight, fault reasons) with the faults of its group's other
/// members added: keepalived keeps the whole group in FAULT while any member is.
pub fn share_faults(groups: &[SyncGroup], names: &[&str], own: &[(i32, Vec<String>)]) -> Vec<(i32, Vec<String>)> {
    let mut all = own.to_vec();
    for g in groups {
        for &m in &g.members {
            for &o in g.members.iter().filter(|o| **o != m) {
                for f in &own[o].1 {
                    all[m].1.push(format!("sync group {}: {} has {f}", g.name, names[o]));
                }
            }
        }
    }
    all
}

impl SyncGroup {
    /// Member `moved` (named `name`) entered `to`: the other members to move there too, and
    /// why (for their log lines).
    pub fn followers(&self, moved: usize, name: &str, to: State) -> (Vec<usize>, String) {
        let why = format!("sync group {}: {name} is {}", self.name, to.name());
        (self.members.iter().copied().filter(|m| *m != moved).collect(), why)
    }

    /// The members' states now: the group's new state when they all agree on one it was not
    /// in (its notify scripts then run).
    pub fn settle(&mut self, states: &[State]) -> Option<State> {
        let first = *states.first()?;
        if states.iter().any(|s| *s != first) || self.state == first {
            return None;
        }
        self.state = first;
        Some(first)
    }
}

/// The state's own notify script (`notify_master` ...), for instances and groups alike.
pub fn script_for(n: &Notify, state: State) -> Option<crate::config::Script> {
    match state {
        State::Master => n.master.clone(),
        State::Backup => n.backup.clone(),
        State::Fault => n.fault.clone(),
        State::Stopped => n.stop.clone(),
        State::Init => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Span;

    fn group(name: &str, members: &[&str]) -> config::SyncGroup {
        config::SyncGroup {
            name: name.into(),
            group: members.iter().map(|m| m.to_string()).collect(),
            track_process: Vec::new(),
            track_bfd: Vec::new(),
            notify: Notify::default(),
            track_file: Vec::new(),
            track_interface: Vec::new(),
            track_script: Vec::new(),
            tracking_weight: false,
            span: Span::default(),
        }
    }

    #[test]
    fn groups_index_their_members_and_keep_their_state_across_reloads() {
        let names = ["a", "b", "c"];
        let cfg = [group("g", &["a", "c", "missing"])];
        let (groups, member_of) = build(&cfg, &names, &[]);
        assert_eq!(groups[0].members, [0, 2]);
        assert_eq!(groups[0].state, State::Init);
        assert_eq!(member_of, [Some(0), None, Some(0)]);
        let mut old = groups;
        old[0].state = State::Master;
        // After a reload that dropped `a`: same group, same state, new indexes.
        let (groups, member_of) = build(&cfg, &["b", "c"], &old);
        assert_eq!((groups[0].members.as_slice(), groups[0].state), (&[1][..], State::Master));
        assert_eq!(member_of, [None, Some(0)]);
    }

    #[test]
    fn a_members_fault_is_every_members_fault() {
        let (groups, _) = build(&[group("g", &["a", "b"])], &["a", "b", "c"], &[]);
        let own = vec![(0, vec!["eth1 down".to_string()]), (10, vec![]), (0, vec!["eth2 down".to_string()])];
        let all = share_faults(&groups, &["a", "b", "c"], &own);
        assert_eq!(all[0], own[0]);
        assert_eq!(all[1], (10, vec!["sync group g: a has eth1 down".to_string()]));
        assert_eq!(all[2], own[2], "not in the group");
    }

    #[test]
    fn members_follow_and_the_group_settles_when_they_agree() {
        let (mut groups, _) = build(&[group("g", &["a", "b", "c"])], &["a", "b", "c"], &[]);
        let g = &mut groups[0];
        let (followers, why) = g.followers(1, "b", State::Master);
        assert_eq!(followers, [0, 2]);
        assert_eq!(why, "sync group g: b is MASTER");
        assert_eq!(g.settle(&[State::Master, State::Master, State::Backup]), None);
        assert_eq!(g.settle(&[State::Master; 3]), Some(State::Master));
        assert_eq!(g.settle(&[State::Master; 3]), None, "notified once");
        assert_eq!(g.settle(&[]), None);
    }
}
